#!/bin/bash
# The whole test suite, as CI runs it (.ci/run) and as the README tells a
# newcomer to run it.  Stages run in order; each one's log is kept under
# build/test-results/; the last line is the summary CI reads.
#
#   ci/run-tests.sh                 all stages
#   ci/run-tests.sh unit asan       only the named stages
#
# Stages: deps build unit asan fuzz container integration bench bench-blk
# (bench and bench-blk only when named: they measure, they do not test).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RESULTS=$ROOT/build/test-results
JOBS=${JOBS:-$(nproc)}
ALL="deps build unit asan fuzz container integration"
STAGES=${*:-$ALL}

stage_deps() {
    if [ "$(id -u)" = 0 ]; then ci/install-deps.sh; else ci/install-deps.sh || true; fi
}
stage_build() {
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNIMBUS_WERROR=ON &&
        ninja -C build -j "$JOBS"
}
stage_unit() {
    ctest --test-dir build --output-on-failure -j "$JOBS" --timeout 300 \
        --output-junit "$RESULTS/ctest-unit.xml"
}
stage_asan() {
    CC=clang-14 cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
        -DNIMBUS_WERROR=ON -DNIMBUS_SANITIZE=ON &&
        ninja -C build-asan -j "$JOBS" &&
        ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure \
            -j "$JOBS" --timeout 600 --output-junit "$RESULTS/ctest-asan.xml"
}
stage_fuzz() { ci/fuzz.sh --smoke; }
stage_container() { ci/test-container.sh; }
stage_integration() { ci/test-integration.sh; }
stage_bench() { /usr/bin/python3 ci/bench-startup.py --nimbus build/nimbus \
    --guest build/tests/guests/tiny.elf; }
# virtio-blk, nimbus vs QEMU; runs itself in ci/vmrun.sh where needed (~3 min).
stage_bench-blk() { /usr/bin/python3 ci/bench-blk.py --nimbus build/nimbus; }

mkdir -p "$RESULTS"
passed=0
failed=0
failed_names=""
t_all=$(date +%s)
for s in $STAGES; do
    if ! declare -F "stage_$s" >/dev/null; then
        echo "run-tests: unknown stage '$s' (stages: $ALL bench bench-blk)" >&2
        exit 2
    fi
    echo "=== stage $s ==="
    t0=$(date +%s)
    "stage_$s" 2>&1 | tee "$RESULTS/stage-$s.log"
    rc=${PIPESTATUS[0]}
    dt=$(($(date +%s) - t0))
    if [ "$rc" = 0 ]; then
        echo "=== stage $s: ok (${dt}s) ==="
        passed=$((passed + 1))
    else
        echo "=== stage $s: FAILED with status $rc (${dt}s); log: $RESULTS/stage-$s.log ==="
        failed=$((failed + 1))
        failed_names="$failed_names $s"
        # Nothing after a failed build can mean anything.
        [ "$s" = deps ] || [ "$s" = build ] && break
    fi
done
echo "run-tests: total $(($(date +%s) - t_all))s${failed_names:+; failed:$failed_names}"
echo "stages: $passed passed, $failed failed"
[ "$failed" = 0 ]
