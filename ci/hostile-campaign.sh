#!/bin/bash
# The hostile-guest campaign (issue 19): many seeds of tests/hostile, on
# demand, niced.  Builds an ASan/UBSan tree (build-asan, as ci/run-tests.sh
# asan does) unless BUILD= names another, then runs every seed and keeps the
# log; the last line is the summary, failing seeds keep their directories.
#
#   ci/hostile-campaign.sh [SEEDS [OPS]]      default: 1-300 and 400
#   BUILD=build ci/hostile-campaign.sh 1-50 2000
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SEEDS=${1:-1-300}
OPS=${2:-400}
BUILD=${BUILD:-build-asan}
JOBS=${JOBS:-2}
if [ ! -x "$BUILD/nimbus" ]; then
    CC=${CC:-clang-14} cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
        -DNIMBUS_WERROR=ON -DNIMBUS_SANITIZE=ON
fi
nice -n 10 ninja -C "$BUILD" -j "$JOBS" nimbus hostile_guest all
mkdir -p "$BUILD/test-results"
LOG=$BUILD/test-results/hostile-campaign-$(date -u +%Y%m%dT%H%M%SZ).log
{
    echo "# hostile campaign: seeds $SEEDS, ops $OPS, build $BUILD, $(date -u), $(uname -srm)"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores;" \
         "kvm modules: $(ls /sys/module | grep '^kvm' | tr '\n' ' ')"
} | tee "$LOG"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} nice -n 10 /usr/bin/python3 \
    tests/hostile/run_hostile.py --nimbus "$BUILD/nimbus" \
    --guest "$BUILD/tests/guests/hostile.elf" --seeds "$SEEDS" --ops "$OPS" \
    --timeout "${TIMEOUT:-300}" 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
