// What the trainer needs from a latent dataset: random access to samples by global id, and a
// deterministic order. The data position of a run is the number of samples consumed, so a
// resumed run continues exactly: sample q of the stream is perm_epoch(q / epoch_len)[q % len],
// with the permutation keyed by (seed, Shuffle, epoch).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::train {

class LatentSource {
 public:
  virtual ~LatentSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t grid() const = 0;  // square token grid side
  virtual int64_t channels() const = 0;
  virtual int64_t num_classes() const = 0;
  // latents (B, T, C) F32 and labels (B) I32 for global sample ids.
  virtual void read(const std::vector<int64_t>& ids, const Tensor& latents,
                    const Tensor& labels) = 0;
};

// In-memory class-conditional Gaussian latents (tests): sample i has class i % K and latent
// mean_k + noise_scale * N(0, 1), everything from the counter RNG.
class SyntheticSource : public LatentSource {
 public:
  SyntheticSource(int64_t samples, int64_t grid, int64_t channels, int64_t classes,
                  uint64_t seed = 7, double noise_scale = 0.5);
  int64_t size() const override { return n_; }
  int64_t grid() const override { return grid_; }
  int64_t channels() const override { return c_; }
  int64_t num_classes() const override { return k_; }
  void read(const std::vector<int64_t>& ids, const Tensor& latents, const Tensor& labels) override;

 private:
  int64_t n_, grid_, c_, k_;
  uint64_t seed_;
  double noise_;
};

// Opens a latent cache directory (the data layer's HDF5 cache) as a LatentSource.
std::unique_ptr<LatentSource> open_latent_cache(const std::string& dir);

// The shuffled sample stream (drop-last epochs of whole global batches).
class SampleOrder {
 public:
  SampleOrder(int64_t dataset_size, int64_t global_batch, uint64_t seed);
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Global sample ids of positions [pos, pos + count).
  std::vector<int64_t> ids(int64_t pos, int64_t count);

 private:
  const std::vector<int64_t>& perm(int64_t epoch);
  int64_t n_, epoch_len_, steps_per_epoch_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> perm_;
};

}  // namespace rae::train
