#!/usr/bin/env bash
# Stage-2 CPU acceptance: train the tiny preset on the 8x8x32 synthetic cache for 300 steps
# (mean loss of the last 20 logged steps < 0.7 x the first logged loss), then check that
# 40 steps at once and 20 + 20 with a restart give byte-identical weights and losses.
set -euo pipefail
RAE="$1"; SRC="$2"; WORK="$3"
rm -rf "$WORK"; mkdir -p "$WORK"
"$RAE" synth-cache --out "$WORK/cache" --samples 4096 --grid 8 --channels 32 --classes 10
# Bad keys and values are rejected before any work, naming the key.
for bad in --train.bogus=1 --optim.lr=abc --schedule.type=step; do
  key=${bad%%=*}; key=${key#--}
  if out=$("$RAE" train --config "$SRC/jobs/tiny.cfg" --cache "$WORK/cache" --run-dir "$WORK/bad" $bad 2>&1); then
    echo "accepted $bad"; exit 1; fi
  echo "$out" | grep -q "$key" || { echo "error for $bad does not name $key: $out"; exit 1; }
  [ ! -e "$WORK/bad" ] || { echo "$bad: run dir created before the error"; exit 1; }
done
T0=$(date +%s)
"$RAE" train --config "$SRC/jobs/tiny.cfg" --cache "$WORK/cache" --run-dir "$WORK/r300" \
  --steps 300 --log.progress=false
echo "300 steps in $(( $(date +%s) - T0 )) s"
losses() { sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$1"; }
losses "$WORK/r300/metrics.jsonl" | awk '
  { l[NR] = $1 }
  END {
    if (NR < 40) { print "too few logged steps: " NR; exit 1 }
    s = 0; for (i = NR - 19; i <= NR; ++i) s += l[i]; m = s / 20;
    printf "first loss %.4f, mean of last 20 %.4f, ratio %.3f (need < 0.7)\n", l[1], m, m / l[1];
    exit !(m < 0.7 * l[1]) }'
"$RAE" train --config "$SRC/jobs/tiny.cfg" --cache "$WORK/cache" --run-dir "$WORK/a" --steps 40 --log.progress=false
"$RAE" train --config "$SRC/jobs/tiny.cfg" --cache "$WORK/cache" --run-dir "$WORK/b" --steps 20 --log.progress=false
"$RAE" train --config "$SRC/jobs/tiny.cfg" --cache "$WORK/cache" --run-dir "$WORK/b" --steps 40 --log.progress=false
for f in shard-00000-of-00001.safetensors extras.safetensors state.json; do
  cmp "$WORK/a/checkpoints/step-0000040/$f" "$WORK/b/checkpoints/step-0000040/$f"
done
cmp <(losses "$WORK/a/metrics.jsonl") <(losses "$WORK/b/metrics.jsonl")
echo "resume: 40 vs 20+20 byte-identical"
# The trained EMA weights, exported, sample (Euler ODE with CFG) into finite latents of the
# cache's shape (normalised; latents.npz carries the statistics the export holds). The run
# directory itself (its newest checkpoint's EMA, consolidated in memory) gives the same latents.
"$RAE" export --run-dir "$WORK/r300" --ema --out "$WORK/ema.safetensors"
"$RAE" sample --model "$WORK/ema.safetensors" --labels 0,3,7 --steps 10 --cfg-scale 1.5 \
  --out "$WORK/samples"
test -s "$WORK/samples/latents.npz"
"$RAE" sample --model "$WORK/r300" --labels 0,3,7 --steps 10 --cfg-scale 1.5 --out "$WORK/samples_run"
cmp "$WORK/samples/latents.npz" "$WORK/samples_run/latents.npz"
echo "sample: the run directory and its export give byte-identical latents"
