#!/usr/bin/env bash
# make bench: on a private stack (.state/bench, ports + 20000), the catalog handler's decided
# commands per second against a plain transactional producer writing the same records; then the
# catalog projector's events per second, live and for a --rebuild of 100k events, and the as-of
# build of the same events (eventshop-history as-of) against that rebuild; last the export of every
# context's events (eventshop-history export) against a raw read_committed consume of them.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export ES_STATE=$top/.state/bench ES_PORT_OFFSET=20000 ES_BUILD=${ES_BUILD:-$top/build}
cd "$top"
# the stack's own lines go to a log, printed only when it does not come up
log=$top/.state/bench-stack-up.log; mkdir -p "$top/.state"
trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
t0=$SECONDS
scripts/stack.sh up >"$log" 2>&1 || { echo "bench: the stack did not come up, see $log; its last 30 lines:" >&2; tail -n 30 "$log" >&2; exit 1; }
echo "bench: stack up in $((SECONDS - t0)) s (state $ES_STATE, logs in $ES_STATE/logs)"
# shellcheck disable=SC1091
. "$ES_STATE/env"
.cache/venv/bin/python bench/handler_bench.py
.cache/venv/bin/python bench/rebuild_bench.py
.cache/venv/bin/python bench/export_bench.py
