#!/usr/bin/env bash
# Installs the pinned tools of the API contract test (tests/integration/test_contract.py)
# (idempotent; called from scripts/setup.sh):
#   @redocly/cli    npm, into .cache/npm (beside dclint), lints api/openapi.yaml
#   schemathesis    PyPI, into its own venv .cache/st4-venv (so its many dependencies never
#                   move the test venv's), every package pinned; fuzzes the live API against it
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

REDOCLY=2.77.0
SCHEMATHESIS=4.32.5
# schemathesis and what it brings, each pinned (pip freeze of a fresh install of the version
# above), so that a run generates the same cases on every machine
ST_PINS="
schemathesis==$SCHEMATHESIS
anyio==4.16.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
graphql-core==3.3.2
harfile==0.6.0
hypothesis==6.170.17
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.4
pluggy==1.7.0
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.4
requests==2.34.2
rich==15.0.0
sortedcontainers==2.4.0
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
"

npm_stamp=.cache/api-tools.done
if ! { [ -f "$npm_stamp" ] && [ "$(cut -d' ' -f1 "$npm_stamp")" = "$REDOCLY" ] &&
    [ -x .cache/npm/node_modules/.bin/redocly ]; }; then
    echo "setup-api-tools: installing @redocly/cli $REDOCLY into .cache/npm"
    command -v npm >/dev/null || { echo "setup-api-tools: npm is needed" >&2; exit 1; }
    # --save-exact records it in .cache/npm/package.json, so the other tools' npm installs there keep it
    npm install --silent --prefix .cache/npm --no-audit --no-fund --save-exact "@redocly/cli@$REDOCLY" >/dev/null
    echo "$REDOCLY $SCHEMATHESIS" >"$npm_stamp"
fi

venv=.cache/st4-venv
if [ -f "$venv/.done" ] && [ "$(cat "$venv/.done")" = "$SCHEMATHESIS" ] && [ -x "$venv/bin/schemathesis" ]; then
    exit 0
fi
echo "setup-api-tools: installing schemathesis $SCHEMATHESIS into $venv"
rm -f "$venv/.done"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
printf '%s\n' $ST_PINS >"$pins"
"$venv/bin/pip" -q install --disable-pip-version-check -r "$pins"
"$venv/bin/schemathesis" --version | grep -q "version $SCHEMATHESIS\$"
echo "$SCHEMATHESIS" >"$venv/.done"
echo "setup-api-tools: ok"
