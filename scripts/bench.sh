#!/usr/bin/env bash
# make bench: on a private stack (.state/bench, ports + 20000; ES_STATE and ES_PORT_OFFSET
# override both), every figure against its limit measured in the same run (docs/BENCHMARKS.md):
# first the idle cost of every role on the fresh stack; then the catalog handler's decided
# commands per second against a plain transactional producer writing the same records; the
# catalog projector's events per second, live and for a --rebuild of 100k events, and the as-of
# build of the same events against that rebuild; the export of every context's events against a
# raw read_committed consume of them; and the hot and cold GET against libh2o serving a fixed body
# and MariaDB point selects. Each script records its figures through bench/results.py into
# $BENCH_RESULTS (emptied first); at the end bench/report.py writes bench/results.json and
# bench/results.png and prints the table of every figure. A script that fails does not stop the
# others; the exit status says whether all of them ran. Every run starts from an empty stack:
# $ES_STATE is stopped and deleted first (figures such as idle RSS, the handler's memory or a
# rebuild's length would otherwise depend on what earlier runs left), which is why it refuses the
# state of `make up` (.state/dev).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export ES_STATE=${ES_STATE:-$top/.state/bench} ES_PORT_OFFSET=${ES_PORT_OFFSET:-20000}
export ES_BUILD=${ES_BUILD:-$top/build}
export BENCH_RESULTS=${BENCH_RESULTS:-$ES_STATE/bench-results.jsonl}
cd "$top"
for tool in wrk sysbench gnuplot; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing: run make setup" >&2; exit 1; }
done
case $(realpath -m "$ES_STATE") in
    "$top/.state/dev" | "$top/.state" | "$top" | /)
        echo "bench: will not empty $ES_STATE: give ES_STATE a folder of its own" >&2; exit 2 ;;
esac
if [ -d "$ES_STATE" ]; then
    scripts/stack.sh down >/dev/null 2>&1 ||
        { echo "bench: cannot stop the stack on $ES_STATE" >&2; exit 1; }
    rm -rf "$ES_STATE"
fi
# the stack's own lines go to a log, printed only when it does not come up
mkdir -p "$ES_STATE"
log=$ES_STATE/bench-stack-up.log
: >"$BENCH_RESULTS"
trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
t0=$SECONDS
scripts/stack.sh up >"$log" 2>&1 || { echo "bench: the stack did not come up, see $log; its last 30 lines:" >&2; tail -n 30 "$log" >&2; exit 1; }
echo "bench: stack up in $((SECONDS - t0)) s (state $ES_STATE, logs in $ES_STATE/logs)"
# shellcheck disable=SC1091
. "$ES_STATE/env"
failed=()
# idle first (on the untouched stack), then these in this order, then any other bench/*_bench.py
# (a new bench script runs without an edit here)
order=(idle_bench handler_bench rebuild_bench export_bench get_bench)
for f in bench/*_bench.py; do
    f=$(basename "$f" .py)
    [[ " ${order[*]} " == *" $f "* ]] || order+=("$f")
done
for script in "${order[@]}"; do
    s0=$SECONDS
    echo "== bench/$script.py"
    .cache/venv/bin/python "bench/$script.py" || failed+=("$script")
    echo "== bench/$script.py: $((SECONDS - s0)) s"
done
.cache/venv/bin/python bench/report.py "$top/bench" || failed+=(report)
echo "bench: $((SECONDS - t0)) s in all"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: failed: ${failed[*]} (their figures are missing above)" >&2
    exit 1
fi
