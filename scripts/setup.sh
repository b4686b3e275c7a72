#!/usr/bin/env bash
# Installs everything eventshop needs on a fresh Debian 12 machine: Debian packages, the Kafka
# jars from Maven Central (into .cache/kafka), and the Python test tools (into .cache/venv).
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

pkgs=(build-essential cmake pkg-config git curl ca-certificates
      librdkafka-dev libavro-dev libmariadb-dev libh2o-evloop-dev libjansson-dev libjwt-dev
      libcriterion-dev libssl-dev libcurl4-openssl-dev uuid-dev libargon2-dev libsodium-dev
      mariadb-server mariadb-client openssl clang-format valgrind prometheus
      python3 python3-venv default-jre-headless maven
      docker.io docker-compose mmdebstrap jq)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# java and mvn may come from elsewhere than Debian (the image ships them)
if command -v java >/dev/null; then missing=("${missing[@]/default-jre-headless}"); fi
if command -v mvn >/dev/null; then missing=("${missing[@]/maven}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the Debian service must not hold the default ports; we run private instances
if command -v systemctl >/dev/null && systemctl is-active --quiet mariadb 2>/dev/null; then
    systemctl stop mariadb || true
fi

kdir=.cache/kafka
if [ ! -f "$kdir/.done" ]; then
    echo "setup: fetching Kafka jars from Maven Central"
    mkdir -p "$kdir/libs"
    mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
        -DoutputDirectory="$top/$kdir/libs" -DincludeScope=runtime
    touch "$kdir/.done"
fi

venv=.cache/venv
if [ ! -f "$venv/.done" ]; then
    echo "setup: creating Python test venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" -q install --disable-pip-version-check \
        'confluent-kafka[avro,schemaregistry]==2.6.1' requests fastavro pymysql pytest aiosmtpd==1.4.6 PyYAML==6.0.4
    touch "$venv/.done"
fi
# packages added to the venv after it was first made
"$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null || "$venv/bin/pip" -q install --disable-pip-version-check aiosmtpd==1.4.6
"$venv/bin/python" -c 'import yaml' 2>/dev/null || "$venv/bin/pip" -q install --disable-pip-version-check PyYAML==6.0.4

# the API contract's linter and schemathesis
scripts/setup-api-tools.sh

# the static checks of the deploy artifacts (kustomize, kubeconform, schemas, linters)
export PATH=$PATH:/usr/local/go/bin
scripts/setup-deploy-tools.sh

# Stripe's own API mock, to check the payments client against Stripe's spec
if [ ! -x .cache/bin/stripe-mock ]; then
    GOBIN=$top/.cache/bin go install github.com/stripe/stripe-mock@v0.203.0
fi
echo "setup: ok"
