#!/usr/bin/env bash
# The `rae eval` CLI end to end under real mpirun, on precomputed features (no network needed).
# eval_cli.sh RAE PYTHON WORK MODE -- MPIRUN...
#   metrics: 1 vs 3 ranks, plain vs ADM-layout reference, `rae eval stats` round trip; every run
#            against the NumPy/SciPy reference definitions (check_metrics.py)
#   errors:  malformed inputs end the job non-zero, fast, with a message naming file and shape
#   network: image inputs through InceptionV3 with its synthetic weights: features at 1 vs 3 ranks
#            (bitwise equal), `rae eval stats --images DIR`, `rae eval` on images; exits 77
#            (skipped) when the build has no network
set -euo pipefail
RAE=$1 PY=$2 WORK=$3 MODE=$4
shift 5
MPIRUN=("$@")
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"

if [[ $MODE == metrics ]]; then
  "$PY" "$HERE/check_metrics.py" make "$WORK"
  run() { local np=$1; shift; "${MPIRUN[@]}" -np "$np" "$RAE" eval "$@"; }
  run 1 --samples samples.npz --ref ref.npz --out m_np1.json
  run 3 --samples samples.npz --ref ref.npz --out m_np3.json --batch 333
  run 3 --samples samples.npz --ref ref_adm.npz --out m_np3_adm.json --batch 1000
  "${MPIRUN[@]}" -np 2 "$RAE" eval stats --samples ref.npz --out ref_stats.npz --ref-images 1500 --batch 97
  run 2 --samples samples.npz --ref ref_stats.npz --out m_np2_stats.json
  "$PY" "$HERE/check_metrics.py" compare "$WORK"
  exit 0
fi

if [[ $MODE == network ]]; then
  "$PY" "$HERE/check_metrics.py" images "$WORK"
  out=$("$RAE" eval features --samples images.npz --inception synthetic --batch 2 --out f_np1.npz 2>&1) || {
    echo "$out"
    grep -q "no InceptionV3 network" <<< "$out" && exit 77
    exit 1
  }
  "${MPIRUN[@]}" -np 3 "$RAE" eval features --samples images.npz --inception synthetic --batch 2 --out f_np3.npz
  "${MPIRUN[@]}" -np 2 "$RAE" eval stats --images refdir --image-size 0 --inception synthetic \
    --batch 2 --ref-images 4 --out ref_stats.npz
  "${MPIRUN[@]}" -np 3 "$RAE" eval --samples images.npz --ref ref_stats.npz --inception synthetic \
    --batch 2 --out m.json
  "$PY" "$HERE/check_metrics.py" check_images "$WORK"
  exit 0
fi

"$PY" "$HERE/check_metrics.py" bad "$WORK"
fails=0
# expect NAME REGEX -- CMD...: CMD must exit non-zero within 60 s with output matching REGEX.
expect() {
  local name=$1 regex=$2; shift 3
  local start out rc=0
  start=$(date +%s)
  out=$(timeout -k 5 120 "$@" 2>&1) || rc=$?
  local took=$(( $(date +%s) - start ))
  if [[ $rc -ne 0 && $took -le 60 ]] && grep -Eq -- "$regex" <<< "$out"; then
    echo "ok   $name (exit $rc, ${took} s)"
  else
    echo "FAIL $name (exit $rc, ${took} s): expected /$regex/ in:"; echo "$out" | tail -n 20
    fails=$((fails + 1))
  fi
}
expect float_images "float_images.npz', key 'arr_0': found <f4 \(4, 8, 8, 3\), expected uint8 images \(N, H, W, 3\)" \
  -- "$RAE" eval --samples float_images.npz --ref feats.npz --out m.json
expect channels_first_3_ranks "rank [0-2]\).*channels_first.npz', key 'arr_0': found \|u1 \(4, 3, 8, 8\), expected uint8 images \(N, H, W, 3\)" \
  -- "${MPIRUN[@]}" -np 3 "$RAE" eval --samples channels_first.npz --ref feats.npz --out m.json
expect pool_width "feats_pool63.npz' give pool features \(N, 63\), reference '.*feats.npz' expects \(N, 64\)" \
  -- "$RAE" eval --samples feats_pool63.npz --ref feats.npz --out m.json
expect truncated "truncated.npz" -- "$RAE" eval --samples truncated.npz --ref feats.npz --out m.json
expect no_network "image inputs need --inception" \
  -- "$RAE" eval --samples images.npz --ref feats.npz --out m.json
expect unknown_option "unrecognised option '--sample'" \
  -- "$RAE" eval --sample feats.npz --ref feats.npz --out m.json
[[ ! -e m.json ]] || { echo "FAIL: a failed run left m.json"; fails=$((fails + 1)); }
exit $fails
