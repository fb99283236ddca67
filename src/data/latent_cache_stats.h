// Per-element dataset statistics of a latent cache: for every (token, channel) element the
// mean and the variance over all samples. Partial statistics (count, mean, M2 = sum of squared
// deviations) from shards or MPI ranks are merged with Chan et al.'s parallel formula, so the
// result does not depend on how the samples were split.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/latent_cache_manifest.h"
#include "tensor/tensor.h"

namespace rae::cache {

class RunningStats {
 public:
  RunningStats() = default;
  explicit RunningStats(int64_t elements);  // elements per sample (H*W*C)

  int64_t elements() const { return static_cast<int64_t>(mean_.size()); }
  int64_t count() const { return count_; }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& m2() const { return m2_; }
  std::vector<double> variance() const;  // population variance M2 / count (0 when count == 0)

  // Merges the statistics of n samples, each `elements()` contiguous floats: (n, elements)
  // (StatsAccumulator over the rows, then merge()).
  void add(const float* rows, int64_t n);
  // Chan's merge: this <- this U other.
  void merge(const RunningStats& other);

  // Flat [count, mean..., M2...] for MPI reductions (gather, then unpack and merge in rank order).
  std::vector<double> pack() const;
  static RunningStats unpack(const std::vector<double>& packed);
  static RunningStats from_moments(int64_t count, std::vector<double> mean, std::vector<double> m2);

 private:
  int64_t count_ = 0;
  std::vector<double> mean_, m2_;
};

// Statistics of rows added one at a time in row order, as per-element sums around a shift (the
// first row's values): s1 = sum(x - K), s2 = sum((x - K)^2) in double. The sums are added in row
// order whatever the batches the rows arrive in, so a shard's statistics do not depend on how its
// writer was fed: the writer (from the rows it stores) and a reader of the finished shard get the
// same bits. (x - K)^2 of floats is exact in double, so only the additions round.
class StatsAccumulator {
 public:
  explicit StatsAccumulator(int64_t elements);
  // n rows of `elements` values in the storage dtype (bf16/f16 bits or f32).
  void add(const void* rows, StorageDType dtype, int64_t n);
  void add(const float* rows, int64_t n) { add(rows, StorageDType::F32, n); }
  int64_t count() const { return count_; }
  RunningStats stats() const;  // count, mean = K + s1/n, M2 = s2 - s1^2/n

 private:
  int64_t count_ = 0;
  std::vector<float> shift_;
  std::vector<double> s1_, s2_;
};

// stats.safetensors: "mean" and "var" f32 (tokens, channels), "count" i64 (1); metadata
// {"count": "<n>", "variance": "population"}. Written atomically.
void save_stats(const std::string& path, const RunningStats& stats, int64_t tokens,
                int64_t channels);

struct CacheStats {
  int64_t count = 0;
  Tensor mean;  // f32 (H*W, C)
  Tensor var;   // f32 (H*W, C), population variance
};
// Reads stats.safetensors; errors name the file and tensor.
CacheStats load_stats(const std::string& path);

}  // namespace rae::cache
