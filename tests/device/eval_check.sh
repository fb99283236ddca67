#!/usr/bin/env bash
# Device check for the whole `rae eval` job (a stage for tests/device/check.sh, or alone):
#   bash tests/device/eval_check.sh BIN_DIR [OUT_DIR]
# BIN_DIR holds the bundle's `rae`. The feature throughput against torch-fidelity is check.sh's
# stage 6 (bench/inception_bench_cuda beside tests/device/torch_inception_bench.py); this script
# times what a user runs: the ADM-style evaluation of EVAL_N samples (default 50000) against
# EVAL_REF_N reference images (default 10000, the ADM reference batch size), random 256 x 256
# uint8 images in .npz files, one GPU, synthetic (pseudo-random) Inception weights: features of
# both sets, statistics, FID, sFID, IS, precision/recall. Target: under 60 s in total (the
# issue's "whole 50k FID under a minute"). Runs once per precision in EVAL_PRECISIONS
# (default "fp32 tf32") while time remains under EVAL_BUDGET_S (default 240).
# Writes OUT_DIR/eval_check.json: per precision, metrics.json's "seconds" (per phase and total)
# and the sample-feature images/s. Environment: EVAL_N, EVAL_REF_N, EVAL_BATCH (200), PYTHON,
# WORK (/tmp/rae_eval_check), EVAL_DEVICE (cuda; cpu for a dry run here).
set -u
BIN=${1:?usage: eval_check.sh BIN_DIR [OUT_DIR]}
OUT=${2:-${OUT:-/tmp/rae_check_out}}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/rae_eval_check}
N=${EVAL_N:-50000} REF_N=${EVAL_REF_N:-10000} B=${EVAL_BATCH:-200}
BUDGET=${EVAL_BUDGET_S:-240}
T0=$(date +%s)
mkdir -p "$OUT" "$WORK"
log() { echo "[eval_check $(($(date +%s) - T0))s] $*"; }

# The image files are kept in WORK with a marker: a second run on the same machine reuses them.
MARK="$WORK/images_${N}_${REF_N}.done"
if [ -f "$MARK" ]; then
  log "reusing $N + $REF_N images in $WORK"
else
log "making $N + $REF_N random 256x256 images"
rm -f "$WORK"/images_*.done
"$PY" - "$WORK" "$N" "$REF_N" <<'PYEOF' || { log "image generation failed"; exit 1; }
import os, sys, time, zipfile
import numpy as np
work, n, ref_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
base = np.random.default_rng(0).integers(0, 256, size=(1000, 256, 256, 3), dtype=np.uint8)
def write(path, count, salt):
    # arr_0 streamed into a stored zip entry (ZIP64): no 10 GB array in memory. Images differ
    # from one block of 1000 to the next by an XOR.
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
touch "$MARK"
fi

for prec in ${EVAL_PRECISIONS:-fp32 tf32}; do
  left=$((BUDGET - ($(date +%s) - T0)))
  if [ "$left" -lt "${EVAL_MIN_LEFT_S:-90}" ]; then log "$prec: skipped (${left} s left)"; continue; fi
  log "rae eval, $prec (limit ${left} s)"
  timeout -k 10 "$left" "$BIN/rae" eval --samples "$WORK/samples.npz" --ref "$WORK/ref.npz" \
    --device "${EVAL_DEVICE:-cuda}" --precision "$prec" --inception synthetic --batch "$B" --progress 5 \
    --out "$WORK/metrics_$prec.json"
  log "rae eval $prec: exit $?"
done

"$PY" - "$WORK" "$OUT" "$N" <<'PYEOF'
import glob, json, os, sys
work, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
res = {"samples": n, "runs": {}}
for p in sorted(glob.glob(os.path.join(work, "metrics_*.json"))):
    prec = os.path.basename(p)[len("metrics_"):-len(".json")]
    try:
        m = json.load(open(p))
        s = m["seconds"]
        res["runs"][prec] = {"seconds": s, "sample_feature_images_per_s": n / s["sample_features"],
                             "under_60_s": s["total"] < 60,
                             "metrics": {k: m[k] for k in ("fid", "sfid", "inception_score",
                                                           "precision", "recall")}}
    except Exception as e:
        res["runs"][prec] = {"error": str(e)}
json.dump(res, open(os.path.join(out, "eval_check.json"), "w"), indent=2)
print(json.dumps(res, indent=2))
PYEOF
