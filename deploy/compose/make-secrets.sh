#!/bin/sh
# Creates the compose secrets (random passwords, a JWT key pair) under deploy/compose/secrets/
# once; never committed (.dockerignore and the lead's .gitignore keep them out).
#
# Permissions: the directory 0700, each file 0644. Compose (without Swarm) bind-mounts a file
# secret into /run/secrets/ with the file's host owner and mode (the long syntax's uid, gid and
# mode apply to Swarm only), and the readers are other users than the operator who ran this:
# the roles as uid 10001, Grafana as uid 472 (group 0), the MariaDB entrypoint and the init job
# as root. A group-readable file would need one group for all of them and a chgrp that only
# root may do on the host, so the files are readable by all inside the containers, and the 0700
# directory is what keeps them from the host's other users: they cannot traverse it to open (or
# hard-link) a file in it. Run again, it only fixes the modes of files an older version made
# 0600. Keep the checkout out of shared or world-exported mounts all the same.
set -eu
d=$(dirname "$0")/secrets
umask 077  # every file starts 0600; made 0644 below, once inside the 0700 directory
mkdir -p "$d"; chmod 700 "$d"
for n in mysql-root mysql-keys grafana-admin $(sed -e 's/#.*//' "$(dirname "$0")/../contexts" | awk 'NF{print "mysql-"$1"-rw mysql-"$1"-ro"}') \
         $(sed -e 's/#.*//' "$(dirname "$0")/../subscribers" | awk '/ mysql( |$)/{print "mysql-"$1} / api-ro( |$)/{print "mysql-"$1"-ro"}'); do
    [ -f "$d/$n.password" ] || openssl rand -hex 24 >"$d/$n.password"
done
if [ ! -f "$d/jwt-private.pem" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/jwt-private.pem" 2>/dev/null
    openssl pkey -in "$d/jwt-private.pem" -pubout -out "$d/jwt-public.pem"
fi
# the e-mail blind-index HMAC key of the users context (64 hex digits)
[ -f "$d/users-index.key" ] || openssl rand -hex 32 >"$d/users-index.key"
# the credential of the users context's open call (the API and the notifications subscriber)
[ -f "$d/users-open.key" ] || openssl rand -hex 32 >"$d/users-open.key"
# the key the test gateway expects (compose only: put the real gateway's key here for real use)
[ -f "$d/gateway.key" ] || echo "sk_test_$(openssl rand -hex 16)" >"$d/gateway.key"
chmod 700 "$d"
chmod 644 "$d"/*.password "$d"/*.pem "$d"/*.key
echo "secrets in $d (directory 0700, files 0644: readable in the containers, not by other host users)"
