#!/usr/bin/env bash
# The README's first command: installs, builds (Release) and runs the end-to-end job on an
# embedded default: a synthetic latent cache and the tiny DiT^DH preset, on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
OUT=${OUT_DIR:-out/demo}
RAE=build/src/rae
rm -rf "$OUT"; mkdir -p "$OUT"
"$RAE" synth-cache --out "$OUT/cache" --samples 4096 --grid 8 --channels 32 --classes 10
"$RAE" train --config jobs/tiny.cfg --cache "$OUT/cache" --run-dir "$OUT/run" --steps 300
echo "demo: run directory $OUT/run (metrics.jsonl, checkpoints/)"
