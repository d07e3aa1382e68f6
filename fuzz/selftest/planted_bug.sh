#!/bin/sh
# Proves the generic plugin harness finds the bug planted in plugins/testbug:
# a libFuzzer run from the benign seeds must stop on an ASan/UBSan report
# located in testbug.c within the time budget, and the saved crash input
# must reproduce it.  ctest: fuzz.selftest.planted_bug (libFuzzer build).
#
#   planted_bug.sh HARNESS TESTBUG_SO SEED_DIR SECONDS
set -eu
harness=$1 plugin=$2 seeds=$3 secs=$4

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$seeds"/* "$work/corpus/"

start=$(date +%s.%N)
NIMBUS_FUZZ_PLUGIN=$plugin "$harness" -max_total_time="$secs" \
    -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1 || true
end=$(date +%s.%N)
took=$(awk "BEGIN { printf \"%.1f\", $end - $start }")

crash=$(find "$work" -maxdepth 1 -name 'crash-*' | head -n 1)
if [ -z "$crash" ] || ! grep -Eq 'testbug\.c:[0-9]+' "$work/log" ||
   ! grep -Eq 'runtime error|AddressSanitizer' "$work/log"; then
    tail -n 30 "$work/log"
    echo "selftest: FAILED: planted bug not found in ${secs}s (ran ${took}s)"
    exit 1
fi
grep -E 'runtime error|ERROR: AddressSanitizer' "$work/log" | head -n 1
if NIMBUS_FUZZ_PLUGIN=$plugin "$harness" "$crash" >"$work/replay" 2>&1; then
    echo "selftest: FAILED: crash input $crash does not reproduce"
    exit 1
fi
execs=$(grep -Eo '^#[0-9]+' "$work/log" | tail -n 1 | tr -d '#')
echo "selftest: planted bug found in ${took}s (${execs:-?} execs), crash reproduces"
