#!/bin/sh
# Creates the compose secrets (random passwords, a JWT key pair) under deploy/compose/secrets/
# once; never committed (.dockerignore and the lead's .gitignore keep them out).
set -eu
d=$(dirname "$0")/secrets
mkdir -p "$d"; chmod 700 "$d"; umask 077
for n in mysql-root mysql-keys grafana-admin $(sed -e 's/#.*//' "$(dirname "$0")/../contexts" | awk 'NF{print "mysql-"$1"-rw mysql-"$1"-ro"}') \
         $(sed -e 's/#.*//' "$(dirname "$0")/../subscribers" | awk '/ mysql( |$)/{print "mysql-"$1}'); do
    [ -f "$d/$n.password" ] || openssl rand -hex 24 >"$d/$n.password"
done
if [ ! -f "$d/jwt-private.pem" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/jwt-private.pem" 2>/dev/null
    openssl pkey -in "$d/jwt-private.pem" -pubout -out "$d/jwt-public.pem"
fi
# the e-mail blind-index HMAC key of the users context (64 hex digits)
[ -f "$d/users-index.key" ] || openssl rand -hex 32 >"$d/users-index.key"
# the key the test gateway expects (compose only: put the real gateway's key here for real use)
[ -f "$d/gateway.key" ] || echo "sk_test_$(openssl rand -hex 16)" >"$d/gateway.key"
echo "secrets in $d"
