#!/usr/bin/env bash
# expect_failure.sh MAX_SECONDS REGEX -- COMMAND...
# Passes when COMMAND exits non-zero within MAX_SECONDS and its output matches REGEX (grep -E).
# A command still running at 3 x MAX_SECONDS is killed (then the test fails as a hang).
set -u
max=$1; regex=$2; shift 3
start=$(date +%s%N)
out=$(timeout -k 5 $((max * 3)) "$@" 2>&1); rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "$out" | tail -n 60
echo "--- exit code $rc after ${elapsed_ms} ms (limit ${max} s)"
if [ "$rc" -eq 0 ]; then echo "FAIL: expected a non-zero exit"; exit 1; fi
# (mpirun itself exits 137 when a rank died of SIGKILL, so only the time tells a hang.)
if [ "$elapsed_ms" -gt $((max * 1000)) ]; then echo "FAIL: took longer than ${max} s (hung?)"; exit 1; fi
if ! echo "$out" | grep -Eq -- "$regex"; then echo "FAIL: output does not match /$regex/"; exit 1; fi
echo "PASS"
