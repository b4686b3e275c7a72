#!/usr/bin/env bash
# Installs everything eventshop needs on a fresh Debian 12 machine: Debian packages, the Kafka
# jars from Maven Central (into .cache/kafka), and the Python test tools (into .cache/venv).
# Idempotent: each step is skipped when its result is already there. `setup.sh --packages`: the
# Debian packages alone (what a build needs), so make test runs the rest beside its builds.
# Prints one line per step it takes ("setup: ..."); the tools' own output goes to .state/setup.log,
# whose last lines it prints when a step fails.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p .state
log=.state/setup.log
: >"$log"
failed() { echo "setup: $1 failed, see $log; its last 30 lines:" >&2; tail -n 30 "$log" >&2; exit 1; }
quiet() { "${@:2}" >>"$log" 2>&1 || failed "$1"; } # what command...: its output in the log
tools() { "$1" 2>>"$log" || failed "$1"; } # script: its stdout (one-liners) shown, stderr logged

pkgs=(build-essential cmake pkg-config git curl ca-certificates
      librdkafka-dev libavro-dev libmariadb-dev libh2o-evloop-dev libjansson-dev libjwt-dev liblmdb-dev libjemalloc-dev
      libcriterion-dev libssl-dev libcurl4-openssl-dev uuid-dev libargon2-dev libsodium-dev
      mariadb-server mariadb-client openssl clang-format valgrind prometheus
      python3 python3-venv default-jre-headless maven
      docker.io docker-compose mmdebstrap jq
      wrk sysbench gnuplot-nox  # these three: make bench (load, MariaDB's limit, the chart)
      chromium chromium-driver) # the pages' tests in a real browser (tests/integration/test_web.py)
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
    quiet "apt-get update" apt-get update -qq
    quiet "apt-get install" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# the Debian service must not hold the default ports; we run private instances
if command -v systemctl >/dev/null && systemctl is-active --quiet mariadb 2>/dev/null; then
    systemctl stop mariadb >>"$log" 2>&1 || true
fi
if [ "${1:-}" = --packages ]; then echo "setup: ok"; exit 0; fi

kdir=.cache/kafka
if [ ! -f "$kdir/.done" ]; then
    echo "setup: fetching Kafka jars from Maven Central"
    mkdir -p "$kdir/libs"
    quiet "fetching the Kafka jars" mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
        -DoutputDirectory="$top/$kdir/libs" -DincludeScope=runtime
    touch "$kdir/.done"
fi

venv=.cache/venv
if [ ! -f "$venv/.done" ]; then
    echo "setup: creating Python test venv"
    quiet "python3 -m venv" python3 -m venv "$venv"
    quiet "pip install" "$venv/bin/pip" -q install --disable-pip-version-check \
        'confluent-kafka[avro,schemaregistry]==2.6.1' requests fastavro==1.13.1 pymysql pytest aiosmtpd==1.4.6 PyYAML==6.0.4
    touch "$venv/.done"
fi
# packages added to the venv after it was first made
"$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null || quiet "pip install aiosmtpd" "$venv/bin/pip" -q install --disable-pip-version-check aiosmtpd==1.4.6
"$venv/bin/python" -c 'import yaml' 2>/dev/null || quiet "pip install PyYAML" "$venv/bin/pip" -q install --disable-pip-version-check PyYAML==6.0.4
# Selenium drives Debian's chromium through its chromium-driver (4.52 needs a certifi PyPI lacks)
"$venv/bin/python" -c 'import selenium' 2>/dev/null || quiet "pip install selenium" "$venv/bin/pip" -q install --disable-pip-version-check selenium==4.51.0

# the API contract's linter and schemathesis
tools scripts/setup-api-tools.sh

# the static checks of the deploy artifacts (kustomize, kubeconform, schemas, linters)
export PATH=$PATH:/usr/local/go/bin
tools scripts/setup-deploy-tools.sh

# Stripe's own API mock, to check the payments client against Stripe's spec
if [ ! -x .cache/bin/stripe-mock ]; then
    echo "setup: installing stripe-mock into .cache/bin"
    quiet "go install stripe-mock" env GOBIN="$top/.cache/bin" go install github.com/stripe/stripe-mock@v0.203.0
fi
echo "setup: ok"
