#!/usr/bin/env bash
# The README's first command: installs, builds (Release) and runs the end-to-end job on an
# embedded default, on the CPU:
#   1. a procedural class-conditional ImageFolder dataset (real JPEG/PNG files),
#   2. the latent-cache job under mpirun (2 ranks) with the tiny random DINOv2-style encoder,
#      then `rae cache verify`,
#   3. DiT^DH training (jobs/tiny.cfg) on that cache, with checkpoints and metrics,
#   4. exporting the EMA model, then
#   5. stage-1 reconstructions of real images (side by side, PSNR/SSIM) and
#   6. class-conditional samples from the exported EMA model (Euler, 50 steps, CFG 1.5) under
#      mpirun, de-normalised with the statistics the export carries and decoded to images:
#      grid.png, the ADM samples.npz and latents.npz.
#   No stage-1 decoder is trained here yet: steps 5 and 6 decode with a RANDOM-weight ViT-tiny
#   decoder (random:ViT-tiny), so their images are noise; the script says so when it runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
OUT=${OUT_DIR:-out/demo}
STEPS=${DEMO_STEPS:-100}
RAE=build/src/rae
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$OUT"; mkdir -p "$OUT"
"$RAE" make-dataset --out "$OUT/images" --classes 10 --per-class 30
mpirun --oversubscribe -np 2 "$RAE" cache --data "$OUT/images" --encoder tiny-random \
  --out "$OUT/cache" --shard-size 64
"$RAE" cache verify "$OUT/cache"
"$RAE" train --config jobs/tiny.cfg --cache "$OUT/cache" --run-dir "$OUT/run" --steps "$STEPS"
"$RAE" export --run-dir "$OUT/run" --ema --out "$OUT/ema.safetensors"
echo "demo: no trained stage-1 decoder yet: reconstructions and samples are decoded by a" \
  "RANDOM-weight ViT-tiny decoder (random:ViT-tiny), so the images are noise"
"$RAE" reconstruct --encoder tiny-random --decoder random:ViT-tiny \
  --stats "$OUT/cache/stats.safetensors" --data "$OUT/images" --num 8 --out "$OUT/reconstruct"
mpirun --oversubscribe -np 2 "$RAE" sample --model "$OUT/ema.safetensors" --decoder random:ViT-tiny \
  --num-per-class 2 --steps 50 --cfg-scale 1.5 --batch 10 --save-latents --out "$OUT/samples"
echo "demo: images $OUT/images, cache $OUT/cache, run $OUT/run, model $OUT/ema.safetensors," \
  "reconstructions $OUT/reconstruct/grid.png, samples $OUT/samples/grid.png, samples.npz" \
  "and latents.npz (random-weight decoder: noise images)"
