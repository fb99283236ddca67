#!/usr/bin/env bash
# Device check for `rae eval` (a stage for tests/device/check.sh, or alone on the device):
#   bash tests/device/eval_check.sh BIN_DIR [OUT_DIR]
# BIN_DIR holds the bundle's `rae` (and eval_metrics_test when bundled). Steps:
#   1 eval_metrics_test's CUDA tests (precision/recall and its kernels, CUDA vs CPU)
#   2 random 256 x 256 uint8 images: EVAL_N samples (default 50000) and EVAL_REF_N reference
#     images (default 10000, the ADM reference batch size), as .npz (arr_0)
#   3 rae eval on one GPU with the synthetic (pseudo-random) Inception weights: the whole job
#     (features of both sets, statistics, FID, sFID, IS, precision/recall), metrics.json's seconds
#   4 torch-fidelity's extractor on TORCH_N images (default 10000) at the same batch
# Prints and writes OUT_DIR/eval_check.json: rae's feature images/s, torch-fidelity's, their
# ratio (target >= 2) and rae's total seconds for the 50k evaluation (target < 60).
# Environment: EVAL_N, EVAL_REF_N, TORCH_N, EVAL_BATCH (200), PYTHON (python3), WORK (/tmp/rae_eval_check).
set -u
BIN=${1:?usage: eval_check.sh BIN_DIR [OUT_DIR]}
OUT=${2:-${OUT:-/tmp/rae_check_out}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/rae_eval_check}
N=${EVAL_N:-50000} REF_N=${EVAL_REF_N:-10000} TORCH_N=${TORCH_N:-10000} B=${EVAL_BATCH:-200}
mkdir -p "$OUT" "$WORK"
log() { echo "[eval_check] $*"; }

if [ -x "$BIN/eval_metrics_test" ]; then
  log "CUDA tests"
  "$BIN/eval_metrics_test" --gtest_filter='*Cuda*' --gtest_brief=1 \
    --gtest_output="json:$OUT/gtest_eval_metrics_test.json" || log "eval_metrics_test failed"
fi

log "making $N + $REF_N random 256x256 images"
"$PY" - "$WORK" "$N" "$REF_N" <<'PYEOF' || { log "image generation failed"; exit 1; }
import os, sys, time, zipfile
import numpy as np
work, n, ref_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
base = np.random.default_rng(0).integers(0, 256, size=(1000, 256, 256, 3), dtype=np.uint8)
def write(path, count, salt):
    # arr_0 streamed into a stored (uncompressed) zip entry: no 10 GB array in memory.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        with z.open("arr_0.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": (count, 256, 256, 3)})
            for i in range(0, count, 1000):
                m = min(1000, count - i)
                f.write((base[:m] ^ np.uint8((i // 1000 + salt) % 256)).tobytes())
write(os.path.join(work, "samples.npz"), n, 0)
write(os.path.join(work, "ref.npz"), ref_n, 128)
print(f"images written in {time.time() - t0:.1f} s")
PYEOF

log "rae eval on the GPU"
"$BIN/rae" eval --samples "$WORK/samples.npz" --ref "$WORK/ref.npz" --device cuda \
  --inception synthetic --batch "$B" --progress 5 --out "$WORK/metrics.json" 2> "$WORK/rae_eval.err"
rc=$?
tail -n 30 "$WORK/rae_eval.err"
log "rae eval exit $rc"

log "torch-fidelity on $TORCH_N images"
"$PY" "$ROOT/tests/device/eval_torch_fidelity_bench.py" --images "$TORCH_N" --batch "$B" | tee "$WORK/torch.json"

"$PY" - "$WORK" "$OUT" "$N" <<'PYEOF'
import json, os, sys
work, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
res = {"samples": n}
try:
    m = json.load(open(os.path.join(work, "metrics.json")))
    s = m["seconds"]
    res.update(rae_total_s=s["total"], rae_sample_features_s=s["sample_features"],
               rae_feature_images_per_s=n / s["sample_features"], rae_seconds=s,
               metrics={k: m[k] for k in ("fid", "sfid", "inception_score", "precision", "recall")})
except Exception as e:
    res["rae_error"] = str(e)
try:
    t = json.loads(open(os.path.join(work, "torch.json")).read().strip().splitlines()[-1])
    res["torch"] = t
    if t.get("ok") and "rae_feature_images_per_s" in res:
        res["ratio_vs_torch_fidelity"] = res["rae_feature_images_per_s"] / t["images_per_s"]
except Exception as e:
    res["torch_error"] = str(e)
json.dump(res, open(os.path.join(out, "eval_check.json"), "w"), indent=2)
print(json.dumps(res, indent=2))
PYEOF
