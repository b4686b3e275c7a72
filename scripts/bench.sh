#!/usr/bin/env bash
# make bench: on a private stack (.state/bench, ports + 20000), the catalog handler's decided
# commands per second against a plain transactional producer writing the same records; then the
# catalog projector's events per second, live and for a --rebuild of 100k events.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export ES_STATE=$top/.state/bench ES_PORT_OFFSET=20000 ES_BUILD=${ES_BUILD:-$top/build}
cd "$top"
trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
scripts/stack.sh up >/dev/null
# shellcheck disable=SC1091
. "$ES_STATE/env"
.cache/venv/bin/python bench/handler_bench.py
.cache/venv/bin/python bench/rebuild_bench.py
