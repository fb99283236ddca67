#!/usr/bin/env bash
# Stage-1 resume through `rae decoder-train` on a tiny procedural dataset (16 px crops, the
# tiny-random encoder at 56 px: 4x4 tokens, ViT-tiny decoder, LPIPS and a "tiny" DINO
# discriminator with synthetic weights); 20 steps of 4 images, LPIPS from step 0, discriminator
# updates from step 4, the GAN term from step 8, so every part of the loss and both optimizers
# are in the state that a checkpoint must carry.
#   resume.sh RAE SRC WORK MODE
#   MODE exact: 20 steps straight vs 10 + 10 (a second process resumes from the step-10
#        checkpoint): the step-20 checkpoints are byte-identical (decoder and discriminator
#        weights, EMA, AdamW moments, spectral-norm u/v, data position) and so is every logged
#        metric line
#   MODE ranks: 2 ranks (mpirun) to step 10, resumed by 1 rank to 20: it resumes from step 10,
#        logs every step once, and every logged loss is within 1e-4 relative of the single
#        process run (float summation order differs between 1 and 2 ranks); 2 ranks to 10
#        resumed on 2 ranks to 20 is byte-identical to 2 ranks straight; 2 ranks under full_shard
#        (ZeRO-3, small buckets) within 1e-4 of the single process run
#   MODE monitor: 2 ranks, 4 steps, reconstruction grids every 2 steps and the rFID of the EMA
#        decoder's reconstructions at the end (--ref from `rae eval stats`, synthetic Inception
#        weights; 6 images split over the ranks and gathered): the PNG files, the TensorBoard
#        image and one eval.jsonl line with rFID and PSNR
set -euo pipefail
RAE="$1"; SRC="$2"; WORK="$3"; MODE="$4"
MPIRUN="${MPIRUN:-mpirun} --oversubscribe --bind-to none"
export OPENBLAS_NUM_THREADS=1
rm -rf "$WORK"; mkdir -p "$WORK"
"$RAE" make-dataset --out "$WORK/data" --classes 4 --per-class 8 --size 24 > /dev/null
T=(decoder-train --config "$SRC/jobs/decoder-tiny.cfg" --data "$WORK/data" --encoder tiny-random
   --encoder.input_size=56 --images.image_size=16 --images.resize=20 --train.global_batch_size=4
   --loss.disc_update_start_epoch=0.5 --loss.disc_start_epoch=1 --checkpoint.every=10
   --log.progress=false)
R0=(--recon.every=0)  # the modes but monitor: a grid at the last step only
# Metric lines without the timing fields, one per step.
metrics() { sed 's/"samples_per_s":[^,}]*,\{0,1\}//; s/"data_wait_s":[^,}]*,\{0,1\}//' "$1/metrics.jsonl"; }
losses() { sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$1/metrics.jsonl"; }
same_checkpoint() {  # every shard and extras file of step 20 byte-identical
  local n=0
  for f in "$1"/checkpoints/step-0000020/*.safetensors; do
    cmp "$f" "$2/checkpoints/step-0000020/$(basename "$f")"
    n=$((n + 1))
  done
  echo "$n checkpoint files byte-identical"
  [ "$n" -ge 2 ]
}

case "$MODE" in
  exact)
    "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/a" --steps 20 2> "$WORK/a.log"
    "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/b" --steps 10 2> "$WORK/b1.log"
    "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/b" --steps 20 2> "$WORK/b2.log"
    grep -q "(step 10)" "$WORK/b2.log"
    same_checkpoint "$WORK/a" "$WORK/b"
    cmp <(metrics "$WORK/a") <(metrics "$WORK/b")
    [ "$(losses "$WORK/b" | wc -l)" -eq 20 ]
    grep -q '"disc_loss"' "$WORK/b/metrics.jsonl" && grep -q '"lambda":[0-9.]*[1-9]' "$WORK/b/metrics.jsonl"
    [ -s "$WORK/b/reconstructions.png" ] && [ -s "$WORK/b/reconstructions/step-0000020.png" ]
    ;;
  monitor)
    "$RAE" eval stats --images "$WORK/data" --image-size 16 --inception synthetic \
      --out "$WORK/ref.npz" --ref-images 8 --progress 1000 2> "$WORK/ref.log"
    $MPIRUN -np 2 "$RAE" "${T[@]}" --run-dir "$WORK/m" --steps 4 --recon.every=2 \
      --ref "$WORK/ref.npz" --inception synthetic --eval.samples=6 --eval.every=0 2> "$WORK/m.log"
    for f in reconstructions.png reconstructions/step-0000002.png reconstructions/step-0000004.png; do
      [ -s "$WORK/m/$f" ] || { echo "missing $WORK/m/$f" >&2; exit 1; }
    done
    grep -q reconstructions "$WORK"/m/events.out.tfevents.* # the image summary's tag
    [ "$(wc -l < "$WORK/m/eval.jsonl")" -eq 1 ]
    grep -q '"step":4' "$WORK/m/eval.jsonl" && grep -q '"samples":6' "$WORK/m/eval.jsonl"
    grep -Eq '"rfid":[0-9]' "$WORK/m/eval.jsonl" && grep -Eq '"psnr":[0-9]' "$WORK/m/eval.jsonl"
    cat "$WORK/m/eval.jsonl"
    ;;
  ranks)
    "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/ref" --steps 20 2> "$WORK/ref.log"
    $MPIRUN -np 2 "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/e" --steps 10 2> "$WORK/e1.log"
    "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/e" --steps 20 2> "$WORK/e2.log"
    grep -q "(step 10)" "$WORK/e2.log"
    close() {
      paste <(losses "$WORK/ref") <(losses "$1") | awk -v what="$2" '
        { n++; d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d }
        END { printf "%s: %d losses, max relative difference %.3g\n", what, n, m;
              exit !(n == 20 && m <= 1e-4) }'
    }
    close "$WORK/e" "2 -> 1 ranks"
    $MPIRUN -np 2 "$RAE" "${T[@]}" "${R0[@]}" --shard full_shard --dist.bucket_mb=0.01 \
      --run-dir "$WORK/fs" --steps 20 2> "$WORK/fs.log"
    close "$WORK/fs" "2 ranks full_shard"
    $MPIRUN -np 2 "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/a2" --steps 20 2> "$WORK/a2.log"
    $MPIRUN -np 2 "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/b2" --steps 10 2> "$WORK/b21.log"
    $MPIRUN -np 2 "$RAE" "${T[@]}" "${R0[@]}" --run-dir "$WORK/b2" --steps 20 2> "$WORK/b22.log"
    same_checkpoint "$WORK/a2" "$WORK/b2"
    cmp <(metrics "$WORK/a2") <(metrics "$WORK/b2")
    ;;
  *)
    echo "unknown mode $MODE" >&2
    exit 2
    ;;
esac
echo "stage-1 resume $MODE: ok"
