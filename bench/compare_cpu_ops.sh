#!/usr/bin/env bash
# Runs bench_ops (ours) and tests/reference/bench_ops_torch.py (PyTorch CPU) on the same shapes
# with the same thread count and prints a table of time ratios (ours / torch; > 1 = we are slower).
# Usage: bench/compare_cpu_ops.sh [--threads N] [--min-time S] [--build DIR] [--filter STR]
# PYTHON (default: $REPO/.venv/bin/python, else python3) must have torch. Results: docs/perf/cpu-ops.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS=2 MIN_TIME=0.2 BUILD="$REPO/build" FILTER=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --min-time) MIN_TIME="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --filter) FILTER="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
BENCH="$BUILD/bench/bench_ops"
[[ -x "$BENCH" ]] || { echo "no $BENCH: build with ninja -C $BUILD bench_ops" >&2; exit 1; }
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)  threads: $THREADS  min time: $MIN_TIME s" >&2
RAE_BENCH_THREADS="$THREADS" "$BENCH" --benchmark_min_time="$MIN_TIME" \
  ${FILTER:+--benchmark_filter="$FILTER"} --benchmark_format=json --benchmark_out="$OUT/ours.json" \
  --benchmark_out_format=json >/dev/null
# Keep torch's OpenMP/MKL pools at the same size as ours.
OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" "$PYTHON" "$REPO/tests/reference/bench_ops_torch.py" \
  --threads "$THREADS" --min-time "$MIN_TIME" --filter "$FILTER" --json "$OUT/torch.json" 2>/dev/null
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$OUT/ours.json" "$OUT/torch.json" <<'PY'
import json, sys
ours_raw, torch_info = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
ours = {}
for b in ours_raw["benchmarks"]:
    ours[b["name"].split("/")[0]] = b["real_time"] * scale[b["time_unit"]]
theirs = torch_info["ms"]
print(f"torch {torch_info['torch']}, threads {torch_info['threads']}; "
      f"ours: {ours_raw['context'].get('threads', '?')} threads, "
      f"{ours_raw['context'].get('num_cpus')} cpus")
print()
print("| op | ours (ms) | torch (ms) | ours / torch |")
print("|---|---:|---:|---:|")
for name, t in theirs.items():
    mine = ours.get(name) or ours.get(name.replace("_fused", ""))
    if mine is None:
        continue
    print(f"| {name} | {mine:.2f} | {t:.2f} | {mine / t:.2f} |")
PY
