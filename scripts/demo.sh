#!/usr/bin/env bash
# The README's first command: installs, builds (Release) and runs the end-to-end job on an
# embedded default, on the CPU:
#   1. a procedural class-conditional ImageFolder dataset (real JPEG/PNG files),
#   2. the latent-cache job under mpirun (2 ranks) with the tiny random DINOv2-style encoder,
#      then `rae cache verify`,
#   3. DiT^DH training (jobs/tiny.cfg) on that cache, with checkpoints and metrics,
#   4. exporting the EMA model and sampling latents from it with the Euler ODE sampler.
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
"$RAE" sample --checkpoint "$OUT/ema.safetensors" --out "$OUT/samples.safetensors" \
  --labels 0,1,2,3,4,5,6,7,8,9
echo "demo: images $OUT/images, cache $OUT/cache, run $OUT/run, samples $OUT/samples.safetensors"
