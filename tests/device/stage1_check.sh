#!/usr/bin/env bash
# Stage "stage1" of the device check (self-contained, like sample_check.sh; the CUDA kernels of
# stage 1 are op-harness cases, run by check.sh's stage 2):
#   1 the stage-1 step golden on the GPU (test_stage1_golden --gtest_filter=*Cuda*: one generator
#     and one discriminator step against the PyTorch transcription of the release, fp32)
#   2 the release's recipe at full size: `rae decoder-train` with the ViT-XL decoder on 256 px
#     crops (resize 384) of a procedural dataset, the DINOv2-B-shaped encoder (random-dinov2-b),
#     LPIPS with VGG16 and the DINO ViT-S/8 discriminator (synthetic weights of the real shapes),
#     the GAN stage on from step 0 (discriminator updates and the adaptive GAN term), bf16, one
#     GPU, per-GPU batch 32, then 64 while time allows: peak device memory (the trainer's
#     peak_device_mem_gib) and the step time (median of the steps after the first two)
#   3 tests/device/torch_stage1_bench.py: the release's step in PyTorch at the same batch
#     (bf16 autocast, as train_stage1.py --precision bf16): time and torch.cuda.max_memory_allocated,
#     or the out-of-memory error (upstream issue #23: more than 80 GB)
# Writes $OUT/stage1.json and $OUT/stage1.txt.
# Usage: stage1_check.sh RAE_BINARY WORK_DIR OUT_DIR PYTHON [TEST_BIN_DIR]
#   env: STAGE1_BATCHES (default "32 64"), STAGE1_STEPS (default 6), STAGE1_STAGE_S (per-command
#        limit, default 240), STAGE1_TORCH (1: run stage 3, default 1)
set -u
RAE=$1 W=$2 OUT=$3 PY=$4 TB=${5:-$(dirname "$1")}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BATCHES=${STAGE1_BATCHES:-32 64}
STEPS=${STAGE1_STEPS:-6}
LIMIT=${STAGE1_STAGE_S:-240}
mkdir -p "$W" "$OUT"
log() { echo "[stage1_check $(date +%H:%M:%S)] $*"; }
RES="$W/stage1_results.jsonl"
: > "$RES"

# 1: the golden step on the GPU.
if [ -x "$TB/test_stage1_golden" ]; then
  timeout -k 10 120 "$TB/test_stage1_golden" --gtest_filter='*Cuda*' --gtest_output="json:$W/gtest_stage1.json"
  rc=$?
  log "golden step on the GPU: exit $rc"
  echo "{\"name\": \"golden_cuda\", \"rc\": $rc}" >> "$RES"
else
  log "no $TB/test_stage1_golden: golden stage skipped"
fi

# 2: the XL recipe.
DATA="$W/stage1_data"
if [ ! -d "$DATA/train" ]; then
  "$RAE" make-dataset --out "$DATA" --classes 4 --per-class 32 --size 256 > /dev/null || log "make-dataset failed"
fi
for B in $BATCHES; do
  RUN="$W/stage1_run_b$B"
  rm -rf "$RUN"
  log "rae decoder-train ViT-XL, batch $B, $STEPS steps"
  timeout -k 10 "$LIMIT" "$RAE" decoder-train --config "$ROOT/jobs/decoder-dinov2-b-vit-xl.cfg" \
    --data "$DATA" --encoder random-dinov2-b --run-dir "$RUN" --steps "$STEPS" \
    --train.global_batch_size="$B" --loss.lpips=random --disc.dino=random-S_8 \
    --loss.disc_update_start_epoch=0 --loss.disc_start_epoch=0 --recon.every=0 --recon.count=4 \
    --log.every=1 --log.progress=false --checkpoint.every=100000 --checkpoint.keep_last=1 \
    > "$W/stage1_b$B.log" 2>&1
  rc=$?
  log "batch $B: exit $rc"
  tail -5 "$W/stage1_b$B.log"
  "$PY" - "$RUN/metrics.jsonl" "$B" "$rc" >> "$RES" <<'PYEOF'
import json, statistics, sys
path, batch, rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
try:
    rows = [json.loads(l) for l in open(path) if l.strip()]
except OSError:
    pass
timed = [r for r in rows if r["step"] > 2]
sps = statistics.median([r["samples_per_s"] for r in timed]) if timed else None
out = {"name": f"rae_vitxl_b{batch}", "batch": batch, "rc": rc, "steps": len(rows),
       "images_per_s": sps, "s_per_step": batch / sps if sps else None,
       "peak_mem_gib": max((r.get("peak_device_mem_gib", 0) for r in rows), default=None),
       "lambda": rows[-1].get("lambda") if rows else None,
       "disc_accuracy": rows[-1].get("disc_accuracy") if rows else None,
       "loss_finite": all(r.get("skipped") is False for r in rows) if rows else None}
print(json.dumps(out))
PYEOF
done

# 3: the release's step in PyTorch.
if [ "${STAGE1_TORCH:-1}" = 1 ]; then
  for B in $BATCHES; do
    log "torch_stage1_bench batch $B"
    PYTHONUNBUFFERED=1 timeout -k 10 "$LIMIT" "$PY" "$ROOT/tests/device/torch_stage1_bench.py" \
      --batch "$B" --steps "$STEPS" >> "$RES" 2> "$W/torch_stage1_b$B.log"
    log "torch batch $B: exit $?"
    tail -3 "$W/torch_stage1_b$B.log"
  done
fi

"$PY" - "$RES" "$OUT" <<'PYEOF'
import json, os, sys
res, out = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(res) if l.strip().startswith("{")]
json.dump(rows, open(os.path.join(out, "stage1.json"), "w"), indent=2)
lines = [f"{'stage1':<22}{'batch':>6}{'img/s':>9}{'s/step':>8}{'peak GiB':>10}  note"]
for r in rows:
    f = lambda k, fmt: "-" if r.get(k) is None else fmt.format(r[k])
    note = r.get("error") or ("rc=%s" % r.get("rc") if r.get("rc") not in (None, 0) else "")
    lines.append(f"{r.get('name', '?'):<22}{f('batch', '{}'):>6}{f('images_per_s', '{:.1f}'):>9}"
                 f"{f('s_per_step', '{:.2f}'):>8}{f('peak_mem_gib', '{:.1f}'):>10}  {note}")
open(os.path.join(out, "stage1.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
