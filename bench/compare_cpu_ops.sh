#!/usr/bin/env bash
# Runs bench_ops (ours) and tests/reference/bench_ops_torch.py (PyTorch CPU) on the same shapes
# with the same thread count and prints a table of time ratios (ours / torch; > 1 = we are slower).
# Usage: bench/compare_cpu_ops.sh [--threads N] [--min-time S] [--repeat R] [--metric real|cpu]
#                                [--build DIR] [--filter STR]
# --metric real (default): wall time per call. --metric cpu: CPU time per call, only meaningful
# with --threads 1 (then it does not depend on other load on a shared machine).
# Both sides run R times, alternating, and each op keeps its fastest time (the least disturbed by
# other processes on a shared machine).
# PYTHON (default: $REPO/.venv/bin/python, else python3) must have torch. Results: docs/perf/cpu-ops.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS=2 MIN_TIME=0.2 REPEAT=3 METRIC=real BUILD="$REPO/build" FILTER=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --min-time) MIN_TIME="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --metric) METRIC="$2"; shift 2 ;;
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

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)  threads: $THREADS  min time: $MIN_TIME s  repeat: $REPEAT" >&2
for r in $(seq 1 "$REPEAT"); do
  RAE_BENCH_THREADS="$THREADS" "$BENCH" --benchmark_min_time="$MIN_TIME" \
    ${FILTER:+--benchmark_filter="$FILTER"} --benchmark_format=json --benchmark_out="$OUT/ours$r.json" \
    --benchmark_out_format=json >/dev/null
  # Keep torch's OpenMP/MKL pools at the same size as ours.
  OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" "$PYTHON" "$REPO/tests/reference/bench_ops_torch.py" \
    --threads "$THREADS" --min-time "$MIN_TIME" --filter "$FILTER" --json "$OUT/torch$r.json" 2>/dev/null
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

if [[ "$METRIC" == cpu && "$THREADS" != 1 ]]; then
  echo "warning: --metric cpu counts only bench_ops' main thread; use it with --threads 1" >&2
fi
python3 - "$OUT" "$REPEAT" "$METRIC" <<'PY'
import json, sys
out, repeat, metric = sys.argv[1], int(sys.argv[2]), sys.argv[3]
scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
ours, theirs, ctx, tinfo = {}, {}, {}, {}
for r in range(1, repeat + 1):
    raw = json.load(open(f"{out}/ours{r}.json"))
    ctx = raw["context"]
    for b in raw["benchmarks"]:
        name = b["name"].split("/")[0]
        t = b["real_time" if metric == "real" else "cpu_time"] * scale[b["time_unit"]]
        ours[name] = min(t, ours.get(name, t))
    tinfo = json.load(open(f"{out}/torch{r}.json"))
    for name, t in tinfo["ms" if metric == "real" else "cpu_ms"].items():
        theirs[name] = min(t, theirs.get(name, t))
print(f"torch {tinfo['torch']} ({tinfo['threads']} threads); ours {ctx.get('threads', '?')} threads; "
      f"{ctx.get('num_cpus')} cpus; {metric} time, fastest of {repeat} runs each")
print()
print("| op | ours (ms) | torch (ms) | ours / torch |")
print("|---|---:|---:|---:|")
for name, t in theirs.items():
    mine = ours.get(name) or ours.get(name.replace("_fused", ""))
    if mine is None:
        continue
    print(f"| {name} | {mine:.2f} | {t:.2f} | {mine / t:.2f} |")
PY
