#!/usr/bin/env bash
# The demo's pipeline (scripts/demo.sh installs and builds, then runs this):
#   scripts/demo-run.sh RAE_EXECUTABLE
# Knobs (environment): DEMO_OUT (results/demo), DEMO_DECODER_STEPS (600), DEMO_DIT_STEPS (1000),
# DEMO_CFG_SCALE (3.0), DEMO_SAMPLE_STEPS (50). The ctest demo_pipeline runs it with few steps.
set -euo pipefail
RAE=$(realpath "$1")
cd "$(dirname "$0")/.."
PY=${DEMO_PYTHON:-$(scripts/python-env.sh)}
OUT=${DEMO_OUT:-results/demo}
W=$OUT/pipeline
DEC_STEPS=${DEMO_DECODER_STEPS:-600}
DIT_STEPS=${DEMO_DIT_STEPS:-1000}
CFG=${DEMO_CFG_SCALE:-3.0}
SAMPLE_STEPS=${DEMO_SAMPLE_STEPS:-50}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2)
# A rerun replaces the previous demo's output, and nothing else.
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/pipeline/timings.tsv" ]; then
  echo "demo: $OUT exists and is not a previous demo's output; set DEMO_OUT to another folder" >&2
  exit 1
fi
rm -rf "$OUT"
mkdir -p "$W"
TIMINGS=$W/timings.tsv
: > "$TIMINGS"

# Runs "$@" as the demo stage $1 (the rest is the command), timed into $TIMINGS.
stage() {
  local name=$1
  shift
  echo
  echo "== demo: $name"
  local t0; t0=$(date +%s.%N)
  "$@"
  awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$name" 'BEGIN { printf "%s\t%.2f\n", n, b - a }' \
    >> "$TIMINGS"
}

T0=$(date +%s)
stage "dataset (10 classes x 50 images)" \
  "$RAE" make-dataset --out "$W/images" --classes 10 --per-class 50
stage "latent cache (2 ranks)" \
  "${MPIRUN[@]}" "$RAE" cache --data "$W/images" --encoder tiny-random --image-size 32 \
  --shard-size 128 --out "$W/cache" --progress 2
stage "cache verify" "$RAE" cache verify "$W/cache"
stage "stage 1: decoder training ($DEC_STEPS steps)" \
  "$RAE" decoder-train --config jobs/decoder-tiny.cfg --data "$W/images" --encoder tiny-random \
  --run-dir "$W/decoder" --steps "$DEC_STEPS"
stage "stage 2: DiT^DH training ($DIT_STEPS steps, 2 ranks)" \
  "${MPIRUN[@]}" "$RAE" train --config jobs/demo-dit.cfg --cache "$W/cache" --run-dir "$W/dit" \
  --steps "$DIT_STEPS"
stage "sampling (2 ranks, CFG $CFG) and decoding" \
  "${MPIRUN[@]}" "$RAE" sample --model "$W/dit" --decoder "$W/decoder" --num-per-class 10 \
  --cfg-scale "$CFG" --steps "$SAMPLE_STEPS" --batch 25 --grid-cols 10 --out "$W/samples" --progress 2
stage "reconstructions" \
  "$RAE" reconstruct --encoder tiny-random --decoder "$W/decoder" \
  --stats "$W/cache/stats.safetensors" --data "$W/images" --split train --num 40 --spread \
  --grid-cols 5 --out "$W/reconstruct"
stage "class agreement" \
  "$RAE" eval agreement --encoder tiny-random --data "$W/images" \
  --samples "$W/samples/samples.npz" --out "$W/agreement.json"
"$PY" tools/demo_report.py --out "$OUT" --decoder-run "$W/decoder" --dit-run "$W/dit" \
  --samples-grid "$W/samples/grid.png" --reconstructions-grid "$W/reconstruct/grid.png" \
  --reconstruct "$W/reconstruct/metrics.json" --agreement "$W/agreement.json" \
  --timings "$TIMINGS"
echo
echo "demo: done in $(( $(date +%s) - T0 )) s: $OUT/summary.md, samples.png, reconstructions.png," \
  "loss.png, metrics.json (data, cache, runs and raw outputs under $W)"
