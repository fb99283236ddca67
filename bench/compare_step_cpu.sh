#!/usr/bin/env bash
# One DiT^DH training step on the CPU, ours (bench/bench_step_cpu) against PyTorch with its own
# MKL (tests/reference/bench_step_torch.py): the same model (body 384 x 6, head 768 x 1,
# 16 x 16 tokens of 768 channels, batch 8, float32), the same thread count, in one invocation,
# alternating the two R times. Prints what each side ran (our `rae info` BLAS line; torch's
# MKL/OpenMP through threadpoolctl and its CPU capability), the load average before and after,
# every round, and the ratio torch / ours of the best and the median step times (> 1: we are
# faster). Run it on an idle machine: docs/perf/step-cpu.md.
# Usage: bench/compare_step_cpu.sh [--threads N] [--repeat R] [--iters I] [--build DIR]
# Threads: both processes are pinned to cores 0..N-1 (taskset; oneTBB follows the affinity mask)
# and torch also gets torch.set_num_threads(N), OMP_NUM_THREADS and MKL_NUM_THREADS = N.
# PYTHON (default: $REPO/.venv/bin/python, else python3) must have torch and threadpoolctl.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS=2 REPEAT=3 ITERS=3 BUILD="$REPO/build"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
BENCH="$BUILD/bench/bench_step_cpu" RAE="$BUILD/src/rae"
for b in "$BENCH" "$RAE"; do
  [[ -x "$b" ]] || { echo "no $b: build it (scripts/build.sh)" >&2; exit 1; }
done
CORES="0-$((THREADS - 1))"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "# commit $(git -C "$REPO" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)," \
  "$(nproc) cpus ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), threads $THREADS," \
  "repeat $REPEAT, $ITERS timed steps per run"
echo "# ours:  $("$RAE" info | grep 'CPU BLAS')"
"$PYTHON" - <<'PY'
import threadpoolctl, torch
libs = ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer') or i.get('architecture') or ''})"
                 for i in threadpoolctl.threadpool_info())
mkl = [l.strip() for l in torch.__config__.show().splitlines() if "Math Kernel" in l]
print(f"# torch: {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
      f"{mkl[0] if mkl else 'no MKL'}; threadpoolctl: {libs or 'none found'}")
PY
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPEAT"); do
  taskset -c "$CORES" "$BENCH" --benchmark_format=json --benchmark_out="$OUT/ours$r.json" \
    --benchmark_out_format=json >/dev/null 2>&1
  OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" taskset -c "$CORES" "$PYTHON" \
    "$REPO/tests/reference/bench_step_torch.py" --threads "$THREADS" --iters "$ITERS" > "$OUT/torch$r.txt"
  echo "# round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" "$REPEAT" <<'PY'
import json, re, statistics, sys
out, repeat = sys.argv[1], int(sys.argv[2])
scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
ours, theirs = [], []
for r in range(1, repeat + 1):
    b = json.load(open(f"{out}/ours{r}.json"))["benchmarks"][0]
    ours.append(b["real_time"] * scale[b["time_unit"]])
    m = re.search(r"([0-9.]+) ms/step", open(f"{out}/torch{r}.txt").read())
    theirs.append(float(m.group(1)))
print()
print("| round | ours (ms/step) | torch (ms/step) | torch / ours |")
print("|---|---:|---:|---:|")
for r, (a, t) in enumerate(zip(ours, theirs), 1):
    print(f"| {r} | {a:.0f} | {t:.0f} | {t / a:.2f} |")
for name, f in (("best", min), ("median", statistics.median)):
    a, t = f(ours), f(theirs)
    print(f"| {name} | {a:.0f} | {t:.0f} | **{t / a:.2f}** |")
PY
