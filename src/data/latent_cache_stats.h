// Per-element dataset statistics of a latent cache: for every (token, channel) element the
// mean and the variance over all samples. Partial statistics (count, mean, M2 = sum of squared
// deviations) from shards or MPI ranks are merged with Chan et al.'s parallel formula, so the
// result does not depend on how the samples were split.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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

  // Adds n samples, each `elements()` contiguous floats: (n, elements).
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
