#!/usr/bin/env bash
# Signals during a checkpoint write, on 2 ranks under mpirun (tiny preset, synthetic data).
#   signal_in_save.sh RAE SRC WORK SHIM PYTHON
# 1. SIGUSR1 during the periodic checkpoint of step 5 and SIGTERM during the same save, on rank 0
#    only (tests/slurm/signal_in_save.c raises them from inside fsync): the save completes, both
#    ranks stop at step 5 (agreed), exit 75, no second checkpoint of step 5 is written.
# 2. SIGUSR1 from outside mid-run; SIGTERM and SIGUSR1 again during the checkpoint that stop
#    writes: it completes, exit 75.
# After each: every checkpoint verifies (rae status --verify), no temporary checkpoint is left,
# metrics.jsonl has steps 1..S once; finally the run resumes to step 30 and its final checkpoint
# equals an uninterrupted run's byte for byte, and `rae status --verify` flags a corrupted copy.
set -euo pipefail
RAE=$(realpath "$1") SRC=$(realpath "$2") WORK=$3 SHIM=$(realpath "$4") PY=$5
rm -rf "$WORK"
mkdir -p "$WORK"
export OPENBLAS_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2)
T=(train --config "$SRC/jobs/tiny.cfg" --cache synthetic:256x8x32x10 --log.progress=false
  --checkpoint.keep_last=10)
fail() {
  echo "FAIL: $*"
  exit 1
}
steps_once() {
  local got
  got=$(sed -n 's/.*"step":\([0-9]*\).*/\1/p' "$1/metrics.jsonl" | tr '\n' ' ')
  [ "$got" = "$(seq -s ' ' 1 "$2") " ] || fail "$1 metrics steps [$got], expected 1..$2"
}
consistent() { # RUN STEP: the newest checkpoint is STEP and verifies; nothing half-written
  local st
  st=$("$RAE" status "$1" --json --verify) || fail "$1: newest checkpoint does not verify: $st"
  "$PY" -c 'import json, sys
st = json.load(sys.stdin)
c = st["last_checkpoint"]
assert c["step"] == int(sys.argv[1]) and c["verified"], c
assert len({x["step"] for x in st["checkpoints"]}) == len(st["checkpoints"])' "$2" <<<"$st" ||
    fail "$1: $st"
  [ -z "$(find "$1" -name '*tmp*')" ] || fail "$1: temporary files left: $(find "$1" -name '*tmp*')"
  steps_once "$1" "$2"
}
run_rc() { # runs the command, prints its exit status
  set +e
  "$@"
  echo $? >"$WORK/rc"
  set -e
}

# 1. Both signals inside the periodic save of step 5, on rank 0 only.
run_rc env RAE_TEST_SAVE_SIGNALS=USR1,TERM "${MPIRUN[@]}" -x LD_PRELOAD="$SHIM" \
  -x RAE_TEST_SAVE_SIGNALS "$RAE" "${T[@]}" --checkpoint.every=5 --run-dir "$WORK/run" \
  --steps 30 >"$WORK/1.log" 2>&1
[ "$(cat "$WORK/rc")" = 75 ] || { cat "$WORK/1.log"; fail "case 1 exit $(cat "$WORK/rc"), expected 75"; }
[ "$(grep -c 'signal_in_save: raising' "$WORK/1.log")" = 2 ] || { cat "$WORK/1.log"; fail "case 1: the shim did not raise 2 signals"; }
grep -q "stop requested (SIGUSR1, 1 rank(s) signalled)" "$WORK/1.log" || fail "case 1: no agreement message"
consistent "$WORK/run" 5
echo "case 1: SIGUSR1 + SIGTERM inside the step-5 save on rank 0: both ranks stopped at 5, exit 75, consistent"

# 2. SIGUSR1 from outside; SIGTERM + SIGUSR1 inside the checkpoint that the stop writes.
"${MPIRUN[@]}" -x LD_PRELOAD="$SHIM" -x RAE_TEST_SAVE_SIGNALS=TERM,USR1 "$RAE" "${T[@]}" \
  --checkpoint.every=1000 --run-dir "$WORK/run" --steps 30 >"$WORK/2.log" 2>&1 &
launcher=$!
for _ in $(seq 600); do
  [ "$(wc -l <"$WORK/run/metrics.jsonl")" -ge 9 ] && break
  kill -0 $launcher 2>/dev/null || break
  sleep 0.05
done
kill -USR1 $launcher # mpirun forwards SIGUSR1 to the ranks
run_rc wait $launcher
[ "$(cat "$WORK/rc")" = 75 ] || { cat "$WORK/2.log"; fail "case 2 exit $(cat "$WORK/rc"), expected 75"; }
[ "$(grep -c 'signal_in_save: raising' "$WORK/2.log")" = 2 ] || { cat "$WORK/2.log"; fail "case 2: the shim did not raise 2 signals"; }
s=$(sed -n 's/.*stopped at step \([0-9]*\) of.*/\1/p' "$WORK/2.log")
[ -n "$s" ] && [ "$s" -gt 5 ] && [ "$s" -lt 30 ] || { cat "$WORK/2.log"; fail "case 2: stop step '$s'"; }
consistent "$WORK/run" "$s"
echo "case 2: SIGUSR1 mid-run, SIGTERM + SIGUSR1 inside that save: stopped at $s, exit 75, consistent"

# Resume to the end and compare with an uninterrupted run.
"${MPIRUN[@]}" "$RAE" "${T[@]}" --checkpoint.every=5 --run-dir "$WORK/run" --steps 30 >"$WORK/3.log" 2>&1
"${MPIRUN[@]}" "$RAE" "${T[@]}" --checkpoint.every=5 --run-dir "$WORK/ref" --steps 30 >"$WORK/ref.log" 2>&1
consistent "$WORK/run" 30
a=$("$RAE" status "$WORK/ref" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["last_checkpoint"]["path"])')
b=$("$RAE" status "$WORK/run" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["last_checkpoint"]["path"])')
diff -r "$a" "$b" >/dev/null || fail "final checkpoint differs from the uninterrupted run's"
echo "resumed to 30: final checkpoint byte-identical to the uninterrupted run's"
# rae status --verify reports a corrupt newest checkpoint (exit 1).
cp -r "$WORK/run" "$WORK/bad"
f=$(find "$WORK/bad/checkpoints" -name '*.safetensors' | sort | tail -n 1)
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
if "$RAE" status "$WORK/bad" --verify >"$WORK/bad.txt"; then fail "rae status --verify accepted a corrupt checkpoint"; fi
grep -q "CORRUPT" "$WORK/bad.txt" || fail "rae status did not say CORRUPT: $(cat "$WORK/bad.txt")"
echo "rae status --verify: corrupt checkpoint reported ($(grep -o 'CORRUPT[^]]*' "$WORK/bad.txt"))"
echo PASS
