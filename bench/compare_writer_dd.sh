#!/usr/bin/env bash
# Shard writer throughput vs dd for the same byte count, in the same run and directory
# (docs/perf/encoders-cpu.md, "Writer throughput vs dd"). Usage:
#   bench/compare_writer_dd.sh [build_dir] [scratch_dir]    (defaults: build, /tmp)
# Runs bench_cache_writer's BM_WriteShard (256 x 16x16x768 bf16 with flips, from f32, fsync and
# checksum included), then dd if=/dev/zero bs=1M conv=fsync for the shard's size, three times
# each, and prints the best of each and the ratio writer/dd (target >= 0.80); also dd of the
# shard's own bytes (if=the shard, from the page cache), since zeros may be cheaper to store.
set -euo pipefail
build=${1:-build}
dir=${2:-/tmp}
bench="${RAE_WRITER_BENCH:-$build/bench/bench_cache_writer}"  # override: another build's binary
[ -x "$bench" ] || { echo "missing $bench (build the benchmarks first)" >&2; exit 1; }
best_writer=0
file_mb=0
for i in 1 2 3; do
  out=$(RAE_BENCH_DIR="$dir" RAE_BENCH_KEEP="$dir/rae-shard-copy-$$.h5" "$bench" --benchmark_filter='BM_WriteShard' \
        --benchmark_format=json 2>/dev/null)
  mbs=$(printf '%s' "$out" | python3 -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"][0]; print(b["MB/s"])')
  file_mb=$(printf '%s' "$out" | python3 -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"][0]; print(b["file_MB"])')
  echo "writer run $i: $mbs MB/s (file $file_mb MB)"
  best_writer=$(python3 -c "print(max($best_writer, $mbs))")
done
count=$(python3 -c "import math; print(math.ceil($file_mb * 1e6 / 2**20))")
f="$dir/rae-dd-$$"
best_dd=0
for i in 1 2 3; do
  line=$(dd if=/dev/zero of="$f" bs=1M count="$count" conv=fsync 2>&1 | tail -1)
  secs=$(printf '%s' "$line" | sed -E 's/.* copied, ([0-9.]+) s.*/\1/')
  mbs=$(python3 -c "print($count * 2**20 / 1e6 / $secs)")
  echo "dd run $i: $mbs MB/s ($line)"
  best_dd=$(python3 -c "print(max($best_dd, $mbs))")
  rm -f "$f"
done
# dd of the shard's own bytes (from the page cache): on a thin-provisioned virtual disk zeros
# may be cheaper to store than real data, so this is the like-for-like reference.
src="$dir/rae-shard-copy-$$.h5"
cat "$src" > /dev/null
best_ddr=0
for i in 1 2 3; do
  line=$(dd if="$src" of="$f" bs=1M conv=fsync 2>&1 | tail -1)
  secs=$(printf '%s' "$line" | sed -E 's/.* copied, ([0-9.]+) s.*/\1/')
  mbs=$(python3 -c "print($file_mb / $secs)")
  echo "dd (shard bytes) run $i: $mbs MB/s ($line)"
  best_ddr=$(python3 -c "print(max($best_ddr, $mbs))")
  rm -f "$f"
done
rm -f "$src"
python3 -c "print(f'best dd (shard bytes) {$best_ddr:.0f} MB/s, ratio writer/dd(shard bytes) {$best_writer/$best_ddr:.2f}')"
python3 -c "print(f'best writer {$best_writer:.0f} MB/s, best dd {$best_dd:.0f} MB/s, ratio {$best_writer/$best_dd:.2f}')"
