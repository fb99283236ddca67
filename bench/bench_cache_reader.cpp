// Latent cache reader throughput from the page cache (docs/perf/cache-reader.md).
// Writes a ~250 MB bf16 cache (DINOv2-B layout 16x16x768, 393 KB per sample), reads it once to
// warm the page cache, then times full shuffled epochs through LatentCacheReader (threads and
// prefetch as in training, bf16 -> f32 conversion included). GB/s counts cache (storage) bytes.
// A second cache with small rows (16x16x32, 16 KB) exercises block shuffling and run coalescing.
// RAE_BENCH_DIR picks the scratch directory (default /tmp); the caches are removed at exit.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data/latent_cache_reader.h"
#include "data/latent_cache_writer.h"

using namespace rae;
using namespace rae::cache;

namespace {

struct BenchCache {
  std::string dir;
  Manifest manifest;
  BenchCache(const std::string& tag, LatentLayout layout, int64_t samples, int64_t shard_size) {
    const char* base = std::getenv("RAE_BENCH_DIR");
    dir = std::string(base ? base : "/tmp") + "/rae-bench-cache-" + tag + "-" +
          std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    ShardSetWriter w(dir, "shard-", layout, 0, shard_size);
    const int64_t e = layout.elements();
    std::vector<float> rows(16 * e);
    std::vector<int32_t> labels(16);
    for (int64_t g0 = 0; g0 < samples; g0 += 16) {
      int64_t n = std::min<int64_t>(16, samples - g0);
      for (int64_t i = 0; i < n * e; ++i)
        rows[i] = static_cast<float>((g0 * 31 + i * 7) % 1000) * 1e-3f - 0.5f;
      for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>((g0 + i) % 1000);
      w.append(rows.data(), nullptr, labels.data(), n);
    }
    manifest.layout = layout;
    manifest.encoder_id = "bench";
    manifest.num_classes = 1000;
    manifest.shards = w.finish();
    manifest.finalize_shards();
    manifest.save(dir);
    read_epoch(2);  // warm the page cache (the "first read")
  }
  ~BenchCache() { std::filesystem::remove_all(dir); }

  ReaderOptions options(int threads, bool direct_io = true) const {
    ReaderOptions o;
    o.direct_io = direct_io;
    o.global_batch = 64;
    o.threads = threads;
    o.prefetch = 2 * threads + 2;
    o.seed = 1;
    return o;
  }
  // One epoch from an open reader (training keeps one reader for the whole run).
  static int64_t read_epoch(LatentCacheReader& r) {
    int64_t samples = 0;
    for (int64_t s = 0; s < r.steps_per_epoch(); ++s) {
      Batch b = r.next();
      benchmark::DoNotOptimize(b.latents.raw());
      samples += b.size();
    }
    return samples;
  }
  void read_epoch(int threads) const {
    LatentCacheReader r(dir, options(threads));
    read_epoch(r);
  }
};

const BenchCache& large_rows() {
  static BenchCache c("large", {16, 16, 768, StorageDType::BF16, false}, 640, 128);  // 252 MB
  return c;
}
const BenchCache& small_rows() {
  static BenchCache c("small", {16, 16, 32, StorageDType::BF16, false}, 4096, 1024);  // 67 MB
  return c;
}

void run(benchmark::State& state, const BenchCache& c, bool direct_io = true) {
  const int threads = static_cast<int>(state.range(0));
  LatentCacheReader reader(c.dir, c.options(threads, direct_io));
  BenchCache::read_epoch(reader);  // warm-up epoch: buffers allocated, threads started
  int64_t samples = 0;
  for (auto _ : state) samples += BenchCache::read_epoch(reader);
  state.SetBytesProcessed(samples * static_cast<int64_t>(c.manifest.layout.row_bytes()));
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
}

void BM_CacheReaderLargeRows(benchmark::State& state) {
  run(state, large_rows());
}
void BM_CacheReaderSmallRows(benchmark::State& state) {
  run(state, small_rows());
}
// The same reads through H5Dread (HDF5's global lock serializes the threads): the baseline that
// the pread path replaces.
void BM_CacheReaderLargeRowsH5Dread(benchmark::State& state) {
  run(state, large_rows(), false);
}

}  // namespace

BENCHMARK(BM_CacheReaderLargeRows)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK(BM_CacheReaderSmallRows)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

BENCHMARK(BM_CacheReaderLargeRowsH5Dread)
    ->Arg(1)
    ->Arg(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

BENCHMARK_MAIN();
