#!/usr/bin/env bash
# `make chaos`: the chaos suite (tests/chaos/chaos.py) on a stack of its own (.state/chaos, ports
# + 1000), made afresh and taken down after. Arguments go to chaos.py (--short, --only ...).
# The short version also runs inside `make test`, on the test stack (scripts/test.sh).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export ES_STATE=${ES_CHAOS_STATE:-$top/.state/chaos} ES_PORT_OFFSET=${ES_CHAOS_PORT_OFFSET:-1000}
export ES_BUILD=${ES_BUILD:-$top/build}
export EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS=${EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS:-20000}
export EVENTSHOP_ORDER_PAY_TIMEOUT_MS=${EVENTSHOP_ORDER_PAY_TIMEOUT_MS:-30000}
scripts/stack.sh down >/dev/null 2>&1 || true
rm -rf "$ES_STATE"
t0=$SECONDS
scripts/stack.sh up >"$top/.state/chaos-stack-up.log" 2>&1 || { cat "$top/.state/chaos-stack-up.log"; exit 1; }
echo "chaos: stack up in $((SECONDS - t0)) s (state $ES_STATE, logs in $ES_STATE/logs)"
# shellcheck disable=SC1091
. "$ES_STATE/env"
"$top/.cache/venv/bin/python" tests/chaos/chaos.py "$@"
rc=$?
scripts/stack.sh down >/dev/null 2>&1 || true
echo "chaos: $((SECONDS - t0)) s in all"
exit $rc
