// Latent cache shard writer throughput (docs/perf/encoders-cpu.md, "Writer throughput vs dd").
// One shard of 256 samples of 16x16x768 with the flipped view, bf16 storage, from f32 input
// (201 MB of file), appended 32 samples at a time as an encoder would, then finish() (flush,
// fsync, xxh64 checksum, rename). MB/s counts the finished file's bytes (1 MB = 1e6 bytes).
// The phase benchmarks time the parts alone: f32 -> bf16 conversion, the checksum of a file in
// the page cache, and append() without finish(). bench/compare_writer_dd.sh runs this next to
// dd for the same byte count. RAE_BENCH_DIR picks the directory (default /tmp; use the disk
// under test); files are removed after each iteration. RAE_BENCH_KEEP=<path> keeps a copy.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "data/latent_cache_checksum.h"
#include "data/latent_cache_writer.h"

using namespace rae;
using namespace rae::cache;

namespace {

constexpr int64_t kSamples = 256;
constexpr int64_t kBatch = 32;

LatentLayout bench_layout() {
  LatentLayout l;
  l.grid_h = 16;
  l.grid_w = 16;
  l.channels = 768;
  l.dtype = StorageDType::BF16;
  l.has_flip = true;
  return l;
}

std::string bench_dir() {
  const char* base = std::getenv("RAE_BENCH_DIR");
  return std::string(base ? base : "/tmp") + "/rae-bench-writer-" + std::to_string(::getpid());
}

// f32 input for one batch (both views), with values that exercise rounding.
struct Input {
  std::vector<float> lat, flip;
  std::vector<int32_t> labels;
  Input() {
    const int64_t n = kBatch * bench_layout().elements();
    lat.resize(n);
    flip.resize(n);
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; ++i) {
      s = s * 1664525u + 1013904223u;
      lat[i] = static_cast<float>(static_cast<int32_t>(s)) * 4.6566e-10f;
      flip[i] = -lat[i] * 1.37f;
    }
    labels.resize(kBatch);
    for (int64_t i = 0; i < kBatch; ++i) labels[i] = static_cast<int32_t>(i);
  }
};

const Input& input() {
  static Input in;
  return in;
}

// Appends kSamples samples (the same batch repeated) to a fresh writer.
void append_all(ShardWriter& w) {
  const Input& in = input();
  for (int64_t done = 0; done < kSamples; done += kBatch)
    w.append(in.lat.data(), in.flip.data(), in.labels.data(), kBatch);
}

void BM_WriteShard(benchmark::State& state) {
  const std::string dir = bench_dir();
  input();
  uint64_t bytes = 0;
  for (auto _ : state) {
    ShardWriter w(dir, "shard", bench_layout(), 0, kSamples);
    append_all(w);
    ShardInfo info = w.finish();
    bytes += info.bytes;
    state.PauseTiming();
    // RAE_BENCH_KEEP=<path>: keep a copy of the shard (before/after byte comparisons).
    if (const char* keep = std::getenv("RAE_BENCH_KEEP"))
      std::filesystem::copy_file(dir + "/" + info.file, keep,
                                 std::filesystem::copy_options::overwrite_existing);
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.counters["MB/s"] =
      benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
  state.counters["file_MB"] = static_cast<double>(bytes) / 1e6 / state.iterations();
}
BENCHMARK(BM_WriteShard)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// append() alone (conversion + H5Dwrite into the page cache); the writer is destroyed unfinished.
void BM_AppendOnly(benchmark::State& state) {
  const std::string dir = bench_dir();
  input();
  for (auto _ : state) {
    ShardWriter w(dir, "shard", bench_layout(), 0, kSamples);
    append_all(w);
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  const double bytes = 2.0 * kSamples * bench_layout().row_bytes();
  state.counters["MB/s"] =
      benchmark::Counter(bytes / 1e6 * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AppendOnly)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// f32 -> bf16 conversion of one shard's elements (both views) with the scalar reference.
void BM_ConvertBf16Scalar(benchmark::State& state) {
  const Input& in = input();
  std::vector<uint16_t> out(in.lat.size());
  for (auto _ : state) {
    for (int64_t rep = 0; rep < 2 * kSamples / kBatch; ++rep) {
      const float* src = rep % 2 ? in.flip.data() : in.lat.data();
      for (size_t i = 0; i < out.size(); ++i) out[i] = f32_to_bf16_bits(src[i]);
      benchmark::DoNotOptimize(out.data());
    }
  }
  const double bytes = 2.0 * kSamples * bench_layout().row_bytes();
  state.counters["MB/s"] =
      benchmark::Counter(bytes / 1e6 * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ConvertBf16Scalar)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// The same conversion with the writer's vectorised block form.
void BM_ConvertBf16Block(benchmark::State& state) {
  const Input& in = input();
  std::vector<uint16_t> out(in.lat.size());
  for (auto _ : state) {
    for (int64_t rep = 0; rep < 2 * kSamples / kBatch; ++rep) {
      const float* src = rep % 2 ? in.flip.data() : in.lat.data();
      f32_to_bf16_block(src, out.data(), out.size());
      benchmark::DoNotOptimize(out.data());
    }
  }
  const double bytes = 2.0 * kSamples * bench_layout().row_bytes();
  state.counters["MB/s"] =
      benchmark::Counter(bytes / 1e6 * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ConvertBf16Block)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// xxh64 of a finished shard that is in the page cache (read + hash).
void BM_ChecksumHot(benchmark::State& state) {
  const std::string dir = bench_dir();
  ShardInfo info;
  {
    ShardWriter w(dir, "shard", bench_layout(), 0, kSamples);
    append_all(w);
    info = w.finish();
  }
  const std::string path = dir + "/" + info.file;
  for (auto _ : state) benchmark::DoNotOptimize(file_checksum(path));
  std::filesystem::remove_all(dir);
  state.counters["MB/s"] = benchmark::Counter(
      static_cast<double>(info.bytes) / 1e6 * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ChecksumHot)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
