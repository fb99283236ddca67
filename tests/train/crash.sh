#!/usr/bin/env bash
# Checkpoints killed mid-write: the writer SIGKILLs itself (RAE_TEST_KILL_CHECKPOINT) after the
# shard files, then after the manifest just before the rename. Each time the half-written
# checkpoint must stay invisible, the next run must resume from the previous checkpoint, and the
# result must be byte-identical to an uninterrupted run.
#   crash.sh RAE SRC WORK
set -euo pipefail
RAE="$1"; SRC="$2"; WORK="$3"
rm -rf "$WORK"; mkdir -p "$WORK"
T=(train --config "$SRC/jobs/tiny.cfg" --cache synthetic:256x8x32x10 --log.progress=false
   --checkpoint.every=2)
"$RAE" "${T[@]}" --run-dir "$WORK/ref" --steps 4 2> "$WORK/ref.log"
for point in shards manifest; do
  R="$WORK/$point"
  "$RAE" "${T[@]}" --run-dir "$R" --steps 2 2> "$R.1.log"
  set +e
  RAE_TEST_KILL_CHECKPOINT=$point "$RAE" "${T[@]}" --run-dir "$R" --steps 4 2> "$R.2.log"
  rc=$?
  set -e
  [ "$rc" -ne 0 ] || { echo "FAIL: the run killed at '$point' exited 0"; exit 1; }
  grep -q "RAE_TEST_KILL_CHECKPOINT=$point" "$R.2.log"
  [ -d "$R/checkpoints/.tmp-step-0000004" ] || { echo "FAIL: no temporary directory"; exit 1; }
  [ ! -e "$R/checkpoints/step-0000004" ] || { echo "FAIL: half-written checkpoint visible"; exit 1; }
  "$RAE" "${T[@]}" --run-dir "$R" --steps 4 2> "$R.3.log"
  grep -q "(step 2)" "$R.3.log" || { echo "FAIL: did not resume from step 2"; cat "$R.3.log"; exit 1; }
  cmp "$WORK/ref/checkpoints/step-0000004/shard-00000-of-00001.safetensors" \
      "$R/checkpoints/step-0000004/shard-00000-of-00001.safetensors"
  [ ! -e "$R/checkpoints/.tmp-step-0000004" ] || { echo "FAIL: stale temporary kept"; exit 1; }
  echo "killed at '$point' (exit $rc): resumed from step 2, step 4 byte-identical"
done
echo PASS
