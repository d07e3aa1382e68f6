#!/bin/bash
# The whole test suite, as CI runs it (.ci/run) and as the README tells a
# newcomer to run it.  Stages run in order; each one's log is kept under
# build/test-results/; the last line is the summary CI reads.
#
#   ci/run-tests.sh                 all stages
#   ci/run-tests.sh unit asan       only the named stages
#
# Stages: deps build unit asan fuzz container integration bench bench-blk
# bench-cloud (the bench stages only when named: they measure, they do not test).
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
# unit_ctest BUILD_DIR JUNIT TIMEOUT: a tree's unit tests. The tests that
# create VMs (ctest label kvm) must run, never skip: with a usable /dev/kvm
# here, NIMBUS_TEST_REQUIRE_KVM=1 turns their skip into a failure; without
# one, they run inside the nested test host (ci/vmrun.sh), like the
# integration tests.
unit_ctest() {
    local dir=$1 xml=$2 timeout=$3
    # Any /dev/kvm flavour: the unit tests' guests are freestanding.
    if ci/lib/kvm-usable.sh; then
        NIMBUS_TEST_REQUIRE_KVM=1 ctest --test-dir "$dir" --output-on-failure -j "$JOBS" \
            --timeout "$timeout" --output-junit "$xml"
        return
    fi
    echo "run-tests: no usable /dev/kvm here: the tests labelled kvm run in ci/vmrun.sh"
    local rc=0
    ctest --test-dir "$dir" -LE kvm --output-on-failure -j "$JOBS" --timeout "$timeout" \
        --output-junit "$xml" || rc=1
    ci/vmrun.sh --timeout 1500 -- env NIMBUS_TEST_REQUIRE_KVM=1 ASAN_OPTIONS="${ASAN_OPTIONS:-}" \
        ctest --test-dir "$dir" -L kvm --output-on-failure -j 2 --timeout "$timeout" \
        --output-junit "${xml%.xml}-kvm.xml" || rc=1
    return $rc
}
stage_unit() {
    unit_ctest build "$RESULTS/ctest-unit.xml" 300
}
stage_asan() {
    CC=clang-14 cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
        -DNIMBUS_WERROR=ON -DNIMBUS_SANITIZE=ON &&
        ninja -C build-asan -j "$JOBS" &&
        ASAN_OPTIONS=detect_leaks=1 unit_ctest build-asan "$RESULTS/ctest-asan.xml" 600
}
stage_fuzz() { ci/fuzz.sh --smoke; }
stage_container() { ci/test-container.sh; }
stage_integration() { ci/test-integration.sh; }
stage_bench() { /usr/bin/python3 ci/bench-startup.py --nimbus build/nimbus \
    --guest build/tests/guests/tiny.elf; }
# Boot to login of the Debian cloud image, nimbus (disk only) vs QEMU (kernel
# given); runs itself in ci/vmrun.sh where needed.
stage_bench-cloud() { /usr/bin/python3 ci/bench-cloud.py --nimbus build/nimbus --markdown; }
# virtio-blk, nimbus vs QEMU; runs itself in ci/vmrun.sh where needed (~3 min).
stage_bench-blk() { /usr/bin/python3 ci/bench-blk.py --nimbus build/nimbus; }

mkdir -p "$RESULTS"
passed=0
failed=0
failed_names=""
t_all=$(date +%s)
for s in $STAGES; do
    if ! declare -F "stage_$s" >/dev/null; then
        echo "run-tests: unknown stage '$s' (stages: $ALL bench bench-blk bench-cloud)" >&2
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
