#!/bin/sh
# Replaying a known crash input must fail and blame the expected source
# file: proves that a file in fuzz/regressions/ really fails ctest (whether
# the sanitizer exits or aborts).  ctest: fuzz.selftest.replay_detects.
#
#   expect_finding.sh REGEX HARNESS INPUT
regex=$1
shift
out=$("$@" 2>&1) && { echo "$out" | tail -n 5; echo "selftest: FAILED: replay did not fail"; exit 1; }
if ! echo "$out" | grep -Eq "$regex"; then
    echo "$out" | tail -n 20
    echo "selftest: FAILED: no report matching '$regex'"
    exit 1
fi
echo "$out" | grep -E 'runtime error|ERROR: AddressSanitizer' | head -n 1
echo "selftest: known crash input is reported"
