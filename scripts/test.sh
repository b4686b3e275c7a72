#!/usr/bin/env bash
# `make test`: every test, on its own stack (.state/test, ports + 10000) so it runs beside
# `make up`. Steps: set-up; a -Werror build and an ASan+UBSan build; format check; unit tests of
# both builds; then the integration and end-to-end suites (pytest) against a fresh stack whose
# roles are the sanitized binaries; then the image built and docker-compose.yml run end to end
# (scripts/compose.sh test); then a scan of every role's log for sanitizer reports.
# Ends with one line: "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export ES_STATE=$top/.state/test ES_PORT_OFFSET=${ES_PORT_OFFSET:-10000} ES_BUILD=$top/build-asan
# short saga deadlines so the deadline tests end quickly (the defaults are minutes)
export EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS=20000 EVENTSHOP_ORDER_PAY_TIMEOUT_MS=30000
out=$top/.state/test-results
passed=0 failed=0
declare -a failures=()
count() { # name status
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}
count_pytest() { # name log: adds the cases of pytest's last line; a run of nothing fails
    local summary np nf
    summary=$(tail -n 1 "$2")
    np=$(echo "$summary" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^passed/) n += $(i-1)} END {print n + 0}')
    nf=$(echo "$summary" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^(failed|error)/) n += $(i-1)} END {print n + 0}')
    [ "$np" -gt 0 ] || { nf=$((nf + 1)); failures+=("$1 ran nothing"); }
    passed=$((passed + np)); failed=$((failed + nf))
    [ "$nf" -eq 0 ] || failures+=("$1")
}
# Each section's wall time: `section NAME "title"` ends the running section (prints
# "   (NAME: N s)") and starts the next with its "== title" line; `section ""` ends the last one.
# The times are summed up in one "time:" line before the last line.
declare -a timings=()
sec_name="" sec_t0=$SECONDS
section() { # name title
    if [ -n "$sec_name" ]; then
        echo "   ($sec_name: $((SECONDS - sec_t0)) s)"
        timings+=("$sec_name $((SECONDS - sec_t0))")
    fi
    sec_name=$1 sec_t0=$SECONDS
    [ -z "$1" ] || echo "== $2"
}
times_line() {
    local t out=""
    for t in "${timings[@]}"; do out+=" ${t% *} ${t##* }s,"; done
    echo "time:${out%,}; total $SECONDS s"
}

sec_name=setup
rm -rf "$out"; mkdir -p "$out"
# The Debian packages first (the builds need them); the rest of the set-up (the Kafka jars, the
# venv, the API and deploy tools: downloads mostly, 2+ minutes on a fresh clone) runs beside the
# builds and is waited for after them, before anything uses it.
scripts/setup.sh --packages | grep -v '^setup: ok' || true
scripts/setup.sh >"$out/setup.log" 2>&1 &
setup_pid=$!

section build "build (-Wall -Wextra -Werror) and ASan+UBSan build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build build -j2 >"$out/build.log" 2>&1
rc=$?; [ $rc -eq 0 ] || tail -n 40 "$out/build.log"; count build $rc
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DES_SANITIZE=ON >/dev/null &&
    cmake --build build-asan -j2 >"$out/build-asan.log" 2>&1
rc=$?; [ $rc -eq 0 ] || tail -n 40 "$out/build-asan.log"; count build-asan $rc
section setup-rest "the rest of the set-up (begun beside the builds)"
wait $setup_pid
rc=$?; grep -v '^setup: ok' "$out/setup.log"; [ $rc -eq 0 ] || count setup $rc
if [ ${#failures[@]} -gt 0 ]; then section ""; times_line; echo "0 passed, ${#failures[@]} failed"; exit 1; fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The format, layers and deploy checks (about 45 s, one core at most: clang-format, Python, the
# deploy tools) run beside the unit tests, which leave a core idle once the plain build's ctest
# is done (the sanitized one runs about twice as long). Each writes its output and its own time
# to $out/checks/<name>; they are shown and counted after the unit tests, in their order.
checks() {
    local t0 bad rc
    unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS # for the unit tests only, as before
    mkdir -p "$out/checks"
    t0=$SECONDS
    bad=$(git ls-files '*.c' '*.h' | while read -r f; do [ -f "$f" ] && ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1 && echo "$f"; done)
    { [ -z "$bad" ] || echo "not formatted: $bad"; } >"$out/checks/format.out"
    echo "$([ -z "$bad" ] && echo 0 || echo 1) $((SECONDS - t0))" >"$out/checks/format.rc"
    t0=$SECONDS
    python3 tests/layers/check_layers.py >"$out/layers.log" 2>&1 &&
        "$top/.cache/venv/bin/python" -m pytest -q -p no:cacheprovider tests/layers >>"$out/layers.log" 2>&1
    echo "$? $((SECONDS - t0))" >"$out/checks/layers.rc"
    t0=$SECONDS
    scripts/lint-deploy.sh >"$out/lint-deploy.log" 2>&1; rc=$?
    echo "$rc $((SECONDS - t0))" >"$out/checks/lint-deploy.rc"
}

section unit "unit tests (plain and sanitized builds, in parallel; beside them the format, layers and deploy checks)"
checks & pc=$!
(cd build && ctest -L unit -V >"$out/unit.log" 2>&1) & p1=$!
(cd build-asan && ctest -L unit -V >"$out/unit-asan.log" 2>&1) & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?; wait $pc
# count criterion's own cases ("Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N")
for f in unit unit-asan; do
    read -r np nf < <(grep -hoE "Synthesis: Tested: [0-9]+ \| Passing: [0-9]+ \| Failing: [0-9]+ \| Crashing: [0-9]+" "$out/$f.log" |
        awk -F'[:|]' '{p += $5; f += $7 + $9} END {print p + 0, f + 0}')
    echo "$f: $np passed, $nf failed ($(grep -hoE "[0-9]+ tests failed out of [0-9]+" "$out/$f.log") executables)"
    passed=$((passed + np)); failed=$((failed + nf))
done
[ $r1 -eq 0 ] || grep -E "FAIL|CRASH|Failed|Assertion|ERROR" "$out/unit.log" | head -n 40
[ $r2 -eq 0 ] || grep -E "FAIL|CRASH|Failed|Assertion|ERROR|Sanitizer" "$out/unit-asan.log" | head -n 40
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] || failures+=(unit)
# the checks run beside the unit tests: their outcome, and each one's own time (not a section's:
# the unit section's wall time covers them); a check that left no outcome failed
check_rc() { rc=1 t="?"; [ ! -f "$out/checks/$1.rc" ] || read -r rc t <"$out/checks/$1.rc"; }
check_rc format
echo "== format (clang-format, .clang-format): $t s beside the unit tests"
cat "$out/checks/format.out" 2>/dev/null
count format "$rc"
check_rc layers
echo "== layers (nothing includes upward; no role folder includes another's headers): $t s beside the unit tests"
[ "$rc" -eq 0 ] || tail -n 20 "$out/layers.log"; count layers "$rc"
check_rc lint-deploy
echo "== deploy artifacts (kustomize + kubeconform, dclint, hadolint): $t s beside the unit tests"
grep -E '^(PASS|FAIL|    )' "$out/lint-deploy.log"
read -r np nf < <(tail -n 1 "$out/lint-deploy.log" | awk '{print $1 + 0, $3 + 0}')
passed=$((passed + np)); failed=$((failed + nf)); [ "$rc" -eq 0 ] || failures+=(lint-deploy)

section stack-up "integration and end-to-end (real Kafka + MariaDB, sanitized roles)"
scripts/stack.sh down >/dev/null 2>&1 || true
rm -rf "$ES_STATE"
t0=$SECONDS
if scripts/stack.sh up >"$out/stack-up.log" 2>&1; then
    echo "stack up in $((SECONDS - t0)) s"
    # shellcheck disable=SC1091
    . "$ES_STATE/env"
    section ctest-integration "C integration tests (ctest -L integration)"
    (cd build-asan && ctest -L integration --output-on-failure >"$out/ctest-integration.log" 2>&1)
    rc=$?; [ $rc -eq 0 ] || tail -n 60 "$out/ctest-integration.log"
    grep -hoE "^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+" "$out/ctest-integration.log"
    it=$(grep -hoE "[0-9]+ tests failed out of [0-9]+" "$out/ctest-integration.log")
    if [ -n "$it" ]; then
        nf=$(echo "$it" | awk '{print $1}'); total=$(echo "$it" | awk '{print $NF}')
        passed=$((passed + total - nf)); failed=$((failed + nf))
    fi
    [ $rc -eq 0 ] || failures+=(ctest-integration)
    section pytest "pytest tests/integration"
    # races.sh's TSan build of the API, made meanwhile at the lowest CPU priority: the suite
    # waits on Kafka, MariaDB and deadlines (its stack and pytest used ~0.25 of a core over
    # test_orders.py with plain roles), so the build takes the idle CPU and races.sh finds it
    # done (its own cmake --build is then a no-op, and reports a failed build as before)
    (cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DES_TSAN=ON >/dev/null &&
        nice -n 19 cmake --build build-tsan -j2 --target eventshop-api) >"$out/build-tsan.log" 2>&1 &
    tsan_build=$!
    # the compose section's images too (54 s alone here, more where the docker layers are not
    # cached, as on CI), with at most half a core: a CFS quota on the build's cgroup, since dockerd
    # runs its steps and no nice of ours reaches them; the compose section then finds them built
    ES_COMPOSE_BUILD_CPUS=0.5 scripts/compose.sh images >"$out/compose-images.log" 2>&1 &
    images_build=$!
    "$top/.cache/venv/bin/python" -m pytest -q -p no:cacheprovider tests/integration \
        --junitxml="$out/pytest.xml" 2>&1 | tee "$out/pytest.log" | tail -n 40
    count_pytest integration "$out/pytest.log"
    wait "$tsan_build" # its outcome is races.sh's build's
    section races "races and memory (TSan API, plain-build stress, valgrind), on the same stack"
    scripts/races.sh >"$out/races.log" 2>&1
    grep -E '^(PASS|FAIL|TIME)' "$out/races.log"
    read -r np nf < <(tail -n 1 "$out/races.log" | awk '{print $2 + 0, $4 + 0}')
    [ "$np" -gt 0 ] || { nf=$((nf + 1)); tail -n 30 "$out/races.log"; }
    passed=$((passed + np)); failed=$((failed + nf))
    [ "$nf" -eq 0 ] || failures+=(races)
    section chaos "chaos, short: broker, MariaDB and a projector killed under load, on the same stack"
    "$top/.cache/venv/bin/python" tests/chaos/chaos.py --short >"$out/chaos.log" 2>&1
    rc=$?
    sed -n '/^longest outage/,$p' "$out/chaos.log"
    [ $rc -eq 0 ] || tail -n 40 "$out/chaos.log" | grep -v '^longest' | grep -E "problem|not converged|differs|Error|error" | head -n 20
    count chaos-short $rc
else
    cat "$out/stack-up.log"; count stack-up 1
fi
section stack-down "stack down"
scripts/stack.sh down >/dev/null 2>&1 || true

section compose "image and compose: the Dockerfile's images, docker-compose.yml running a whole order"
# the images begun beside pytest (when the stack came up): a build that failed there is made
# again here by compose.sh test, which builds whatever image is missing
[ -z "${images_build:-}" ] || wait "$images_build"
: >"$out/compose.log"
[ ! -f "$out/compose-images.log" ] || grep -v '^compose: image ' "$out/compose-images.log" >>"$out/compose.log"
scripts/compose.sh test >>"$out/compose.log" 2>&1
rc=$?
grep -E '^compose: (image|engine)|^[0-9]+ (passed|failed)' "$out/compose.log"
[ $rc -eq 0 ] || tail -n 40 "$out/compose.log"
count_pytest compose "$out/compose.log"
[ $rc -eq 0 ] || [[ " ${failures[*]} " == *" compose "* ]] || count compose $rc

section sanitizer-logs "sanitizer reports in role logs"
rep=$(grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$ES_STATE"/logs/*.log 2>/dev/null)
if [ -n "$rep" ]; then
    for f in $rep; do echo "--- $f"; grep -A 30 -m 3 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f"; done
fi
count sanitizer-logs "$([ -z "$rep" ] && echo 0 || echo 1)"

section ""
times_line
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
