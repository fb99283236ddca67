#!/usr/bin/env bash
# Stage "sample" of tests/device/check.sh (self-contained; CUDA correctness of the decoder and the
# samplers runs in its stage 2: DecoderGolden.CudaMatchesGolden, SamplerParity.Cuda*):
#   1 `rae sample` on one GPU: DiT^DH-XL (random weights) at 16x16x768, 50 Euler steps, CFG 1.5,
#     bf16, decoded by a ViT-XL decoder (random weights) to 256 px: --report gives images/s with
#     decoding and of sampling alone (latents), over the batches after the first (warm-up)
#   2 the decoder forward alone: `rae decode --benchmark 64` (ViT-XL) in bf16 and fp32
#   3 tests/device/torch_sample_bench.py: the release's sampling path in PyTorch (bf16 autocast,
#     its default per-process batch 125, forward_with_cfg, fixed-grid Euler, RAE.decode, uint8)
#     and the eager decoder forward at batch 64
# Writes $OUT/sample.json (every measurement and the ratios rae / torch) and $OUT/sample.txt.
# Targets (issue 11): sampling images/s >= 1.5x the release path; decoder forward >= 1.5x eager.
# Usage: sample_check.sh RAE_BINARY WORK_DIR OUT_DIR PYTHON
#   env: SAMPLE_BATCH (ours, default 128), SAMPLE_BATCHES (timed batches incl. warm-up, 2),
#        TORCH_SAMPLE_BATCH (default 125), SAMPLE_STAGE_S (per-command limit, default 240)
set -u
RAE=$1 W=$2 OUT=$3 PY=$4
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${SAMPLE_BATCH:-128}
NB=${SAMPLE_BATCHES:-2}
TB=${TORCH_SAMPLE_BATCH:-125}
LIMIT=${SAMPLE_STAGE_S:-240}
mkdir -p "$W" "$OUT"
rm -rf "$W/rae_sample"
log() { echo "[sample_check $(date +%H:%M:%S)] $*"; }

n=$((B * NB))
log "rae sample: $n samples, batch $B"
# One sample per class (n <= 1000).
timeout -k 10 "$LIMIT" "$RAE" sample --model random:DiTDH-XL --decoder random:ViT-XL --stats none \
  --classes "0-$((n - 1))" --num-per-class 1 --steps 50 --cfg-scale 1.5 --batch "$B" --device cuda --precision bf16 --progress 5 \
  --out "$W/rae_sample" --report "$W/rae_sample.json"
log "rae sample: exit $?"
for prec in bf16 fp32; do
  timeout -k 10 120 "$RAE" decode --decoder random:ViT-XL --benchmark 64 --iters 5 --device cuda \
    --precision "$prec" | tee "$W/rae_decoder_$prec.json"
  log "rae decode --benchmark ($prec): exit $?"
done
export PYTHONUNBUFFERED=1
timeout -k 10 "$LIMIT" "$PY" "$ROOT/tests/device/torch_sample_bench.py" --batch "$TB" --batches "$NB" \
  --steps 50 --cfg-scale 1.5 --decoder-batch 64 | tee "$W/torch_sample.out"
log "torch_sample_bench: exit $?"

"$PY" - "$W" "$OUT" <<'PYEOF'
import json, os, sys
w, out = sys.argv[1:3]
def load(p):
    rows = []
    try:
        for line in open(p):
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    except OSError:
        pass
    return rows
ours = (load(os.path.join(w, "rae_sample.json")) or [{}])[0]
dec = {p: (load(os.path.join(w, f"rae_decoder_{p}.json")) or [{}])[0] for p in ("bf16", "fp32")}
torch = {r["name"]: r for r in load(os.path.join(w, "torch_sample.out"))}
def ratio(a, b):
    return a / b if a and b else None
res = {
    "rae_sample": ours, "rae_decoder": dec, "torch": torch,
    "ratio_sample_decoded": ratio(ours.get("images_per_s_steady"),
                                  torch.get("torch_sample_decoded", {}).get("images_per_s")),
    "ratio_sample_latents": ratio(ours.get("latents_per_s_steady"),
                                  torch.get("torch_sample_latents", {}).get("images_per_s")),
    "ratio_decoder_bf16": ratio(dec["bf16"].get("images_per_s"),
                                torch.get("torch_decoder_bf16", {}).get("images_per_s")),
    "ratio_decoder_fp32": ratio(dec["fp32"].get("images_per_s"),
                                torch.get("torch_decoder_fp32", {}).get("images_per_s")),
}
json.dump(res, open(os.path.join(out, "sample.json"), "w"), indent=2)
def f(x):
    return "-" if x is None else f"{x:.2f}"
lines = [
    "sampling DiT^DH-XL, 50 Euler steps, CFG 1.5, bf16 (images/s; ours batch "
    f"{ours.get('batch')}, torch batch {torch.get('torch_sample_latents', {}).get('batch')})",
    f"  latents only : rae {f(ours.get('latents_per_s_steady'))}  torch "
    f"{f(torch.get('torch_sample_latents', {}).get('images_per_s'))}  ratio {f(res['ratio_sample_latents'])}",
    f"  with decoding: rae {f(ours.get('images_per_s_steady'))}  torch "
    f"{f(torch.get('torch_sample_decoded', {}).get('images_per_s'))}  ratio {f(res['ratio_sample_decoded'])}",
    "ViT-XL decoder forward, batch 64 (images/s)",
]
for p in ("bf16", "fp32"):
    lines.append(f"  {p}: rae {f(dec[p].get('images_per_s'))}  torch eager "
                 f"{f(torch.get('torch_decoder_' + p, {}).get('images_per_s'))}  ratio {f(res['ratio_decoder_' + p])}")
open(os.path.join(out, "sample.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
