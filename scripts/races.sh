#!/usr/bin/env bash
# Races and memory, on a running stack (scripts/test.sh runs it on the test stack after the
# integration suite; by hand: `. .state/test/env; scripts/races.sh [tsan|stress|valgrind]...`):
#   tsan      the API built with ThreadSanitizer (build-tsan) runs the concurrent order and flash
#             sale tests; any ThreadSanitizer report in its log fails
#   stress    the plain (non-sanitized) API takes 5 rounds of 200 concurrent order placements
#             (tests/integration/test_zz_stress.py) and must still be the same process after
#   valgrind  every role binary starts, becomes ready and stops under valgrind with no error and
#             no definite leak
# Each stage swaps one role's binary and puts the stack's own back after. Prints "races: N
# passed, N failed" last and exits non-zero on a failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
: "${ES_STATE:?run on a stack: . \$ES_STATE/env first}"
# shellcheck disable=SC1091
. "$ES_STATE/env"
stack=$top/scripts/stack.sh
py=$top/.cache/venv/bin/python
logs=$ES_STATE/logs
passed=0 failed=0
ok() { echo "PASS $1"; passed=$((passed + 1)); }
ko() { echo "FAIL $1"; failed=$((failed + 1)); }

# swaps ROLE to run with the given environment (ES_ROLE_BUILD / ES_ROLE_WRAPPER ...)
swap_in() { # role seconds var=value...
    local role=$1 secs=$2; shift 2
    "$stack" role-stop "$role"
    env "$@" "$stack" role-start "$role"
    "$stack" role-wait "$role" "$secs"
}
swap_back() {
    "$stack" role-stop "$1"
    "$stack" role-start "$1" && "$stack" role-wait "$1" 120
}

tsan() {
    local b=$top/build-tsan log=$logs/api.log
    cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DES_TSAN=ON >/dev/null &&
        cmake --build "$b" -j2 --target eventshop-api >"$logs/build-tsan.log" 2>&1 ||
        { tail -n 30 "$logs/build-tsan.log"; ko "tsan: build"; return; }
    # grep reads all of nm's output (with -q, nm's SIGPIPE would fail the pipeline)
    nm "$b/api/eventshop-api" 2>/dev/null | grep __tsan_init >/dev/null ||
        { ko "tsan: the api is not instrumented"; return; }
    local mark; mark=$(wc -l <"$log" 2>/dev/null || echo 0)
    # second_deadlock_stack: both stacks of a lock-order report; history for the older access
    if ! swap_in api 120 ES_ROLE_BUILD="$b" \
        TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 history_size=4 suppressions=$top/tests/tsan.supp"; then
        ko "tsan: api did not start"; swap_back api; return
    fi
    ES_RACES=1 ES_STRESS_ROUNDS=1 "$py" -m pytest -q -p no:cacheprovider \
        tests/integration/test_orders.py tests/integration/test_zz_stress.py \
        -k "flash_sale or every_saga or happy_path or concurrent_placements" 2>&1 | tail -n 5
    local rc=${PIPESTATUS[0]}
    swap_back api
    [ "$rc" -eq 0 ] && ok "tsan: concurrent order and flash sale tests" || ko "tsan: concurrent order and flash sale tests"
    if tail -n +"$((mark + 1))" "$log" | grep -q "WARNING: ThreadSanitizer"; then
        tail -n +"$((mark + 1))" "$log" | grep -A 40 -m 3 "WARNING: ThreadSanitizer"
        ko "tsan: reports in the api log"
    else
        ok "tsan: no report in the api log"
    fi
}

stress() {
    local pid
    if ! swap_in api 60 ES_ROLE_BUILD="$top/build"; then ko "stress: api did not start"; swap_back api; return; fi
    pid=$(cat "$ES_STATE/run/api.pid")
    ES_RACES=1 "$py" -m pytest -q -p no:cacheprovider tests/integration/test_zz_stress.py 2>&1 | tail -n 5
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] && ok "stress: 5 x 200 concurrent orders" || ko "stress: 5 x 200 concurrent orders"
    if kill -0 "$pid" 2>/dev/null; then ok "stress: the plain api survived"; else
        tail -n 30 "$logs/api.log"; ko "stress: the plain api died"
    fi
    swap_back api
}

# One role per binary: start under valgrind, wait until ready, TERM, then read valgrind's verdict.
valgrind_role() { # role
    local role=$1 vlog=$logs/valgrind-$1.log
    rm -f "$vlog"
    local vg="valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
        --errors-for-leak-kinds=definite --suppressions=$top/tests/valgrind.supp
        --soname-synonyms=somalloc=*jemalloc*
        --log-file=$vlog"
    if ! swap_in "$role" 180 ES_ROLE_BUILD="$top/build" ES_ROLE_WRAPPER="$vg"; then
        tail -n 20 "$logs/$role.log"; tail -n 20 "$vlog" 2>/dev/null
        ko "valgrind: $role did not become ready"; swap_back "$role"; return
    fi
    # role-stop: TERM, then KILL only after ES_STOP_TIMEOUT; it holds the role, so the
    # supervisor does not start it again meanwhile
    ES_STOP_TIMEOUT=90 "$stack" role-stop "$role"
    if ! grep -q "ERROR SUMMARY" "$vlog"; then
        ko "valgrind: $role did not stop within 90 s of TERM"
    elif grep -q "ERROR SUMMARY: 0 errors" "$vlog" && ! grep -q "definitely lost: [1-9]" "$vlog"; then
        ok "valgrind: $role"
    else
        grep -E "ERROR SUMMARY|definitely lost|Invalid|uninitialised" "$vlog" | head -n 20
        ko "valgrind: $role (see $vlog)"
    fi
    "$stack" role-start "$role" && "$stack" role-wait "$role" 120
}

valgrind_all() {
    [ -z "${ES_VALGRIND_ROLES:-}" ] || { for r in $ES_VALGRIND_ROLES; do valgrind_role "$r"; done; return; }
    command -v valgrind >/dev/null || { ko "valgrind: not installed"; return; }
    # the handler of the context with the least history (users, else catalog): its start
    # recovers partitions from the changelog, which valgrind slows 20 to 50 times
    local r h=catalog roles
    case " ${ES_CONTEXTS:-} " in *" users "*) h=users ;; esac
    roles=(registry api "handler-$h" projector-catalog)
    for r in ${ES_SUBSCRIBERS:-}; do roles+=("subscriber-$r"); done
    [ -z "${ES_SUBSCRIBERS:-}" ] || roles+=(test-gateway test-carrier)
    # valgrind runs a process's threads on one core at a time, so one role under it leaves the
    # other core idle: the registry first, alone (every role's start reads schemas from it), then
    # the rest in two lanes at once, each lane one role after another (125 s in one lane, 11:06)
    valgrind_role registry
    local lane=$logs/valgrind-lane i
    rm -f "$lane".[01]
    for i in 0 1; do
        (
            passed=0 failed=0
            for ((j = 1 + i; j < ${#roles[@]}; j += 2)); do valgrind_role "${roles[j]}"; done
        ) >"$lane.$i" 2>&1 &
    done
    wait
    for i in 0 1; do
        cat "$lane.$i"
        passed=$((passed + $(grep -c '^PASS' "$lane.$i")))
        failed=$((failed + $(grep -c '^FAIL' "$lane.$i")))
    done
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tsan stress valgrind)
for s in "${stages[@]}"; do
    echo "== races: $s"
    t0=$SECONDS
    case $s in
        tsan) tsan ;;
        stress) stress ;;
        valgrind) valgrind_all ;;
        *) echo "unknown stage '$s' (tsan, stress, valgrind)" >&2; exit 2 ;;
    esac
    echo "TIME races $s: $((SECONDS - t0)) s"
done
echo "races: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
