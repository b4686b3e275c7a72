#!/usr/bin/env bash
# Installs the pinned tools of the API contract test (tests/integration/test_contract.py)
# (idempotent; called from scripts/setup.sh after the test venv exists):
#   @redocly/cli    npm, into .cache/npm (beside dclint), lints api/openapi.yaml
#   schemathesis    PyPI, into the test venv .cache/venv, fuzzes the live API against it
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

REDOCLY=2.77.0
SCHEMATHESIS=4.32.5

stamp=.cache/api-tools.done
want="$REDOCLY $SCHEMATHESIS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
    [ -x .cache/npm/node_modules/.bin/redocly ] && [ -x .cache/venv/bin/schemathesis ]; then
    exit 0
fi
echo "setup-api-tools: installing @redocly/cli $REDOCLY and schemathesis $SCHEMATHESIS into .cache"
command -v npm >/dev/null || { echo "setup-api-tools: npm is needed" >&2; exit 1; }
[ -x .cache/venv/bin/pip ] || { echo "setup-api-tools: the test venv .cache/venv is needed first" >&2; exit 1; }
# --save-exact records it in .cache/npm/package.json, so the other tools' npm installs there keep it
npm install --silent --prefix .cache/npm --no-audit --no-fund --save-exact "@redocly/cli@$REDOCLY" >/dev/null
.cache/venv/bin/pip -q install --disable-pip-version-check "schemathesis==$SCHEMATHESIS"
echo "$want" >"$stamp"
echo "setup-api-tools: ok"
