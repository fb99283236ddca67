// What the trainer needs from the data: per step this rank's share of the global batch
// (latents (b, T, C) F32, labels (b) I32, global sample ids (b) I64), a restorable position, the
// signature of everything else that fixes the order (checked on resume), and the per-element
// latent statistics (normalisation). Two streams: the latent cache reader of the data layer, and
// an in-memory synthetic source.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffusion/latent_norm.h"
#include "tensor/tensor.h"

namespace rae::train {

struct DataBatch {
  // (b, T, C) F32 latents, or for an image stream (stage 1: train/image_stream.h) the pixels
  // (b, S, S, 3) U8; labels (b) I32, global sample ids (b) I64.
  Tensor latents, labels, ids;
  double wait_s = 0;
};

// The order of epoch `epoch` of n samples: a Fisher-Yates permutation from the counter RNG
// (purpose Shuffle, step = epoch), the same for every rank and world size.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

struct StreamOptions {
  int64_t global_batch = 1;
  int rank = 0, world_size = 1;
  uint64_t seed = 0;
};

class BatchStream {
 public:
  virtual ~BatchStream() = default;
  virtual int64_t size() const = 0;
  virtual int64_t grid() const = 0;  // square token grid side
  virtual int64_t channels() const = 0;
  virtual int64_t num_classes() const = 0;
  // Must be called once before next(); starts at position 0.
  virtual void open(const StreamOptions& o) = 0;
  virtual int64_t steps_per_epoch() const = 0;
  virtual DataBatch next() = 0;
  virtual nlohmann::json position() const = 0;  // of the batch the next call returns
  virtual void seek(const nlohmann::json& pos) = 0;
  // Everything besides the position that determines the batches (seed, global batch, the data's
  // identity, ...), as one string; valid after open(). A checkpoint stores it and a resume with
  // a different signature is an error (train.allow_data_change overrides it).
  virtual std::string order_signature() const = 0;
  // Per-element mean and population variance over the dataset, (T, C) F32; undefined when the
  // data has none.
  virtual diffusion::LatentStats latent_stats() const = 0;
  // Where the data comes from, for messages ("latent cache 'dir'").
  virtual std::string describe() const = 0;
};

// In-memory class-conditional Gaussian latents (tests, benchmarks): sample i has class i % K and
// latent mean_k + noise_scale * N(0, 1), all from the counter RNG. Order: a Fisher-Yates
// permutation per epoch (purpose Shuffle, step = epoch), drop-last global batches. Statistics:
// exact over all samples. With `materialize` every sample is drawn once at open() and batches
// are copied from memory (the GPU step benchmark, whose step must not wait for the host RNG).
class SyntheticStream : public BatchStream {
 public:
  SyntheticStream(int64_t samples, int64_t grid, int64_t channels, int64_t classes,
                  uint64_t data_seed = 7, double noise_scale = 0.5, bool materialize = false);
  int64_t size() const override { return n_; }
  int64_t grid() const override { return grid_; }
  int64_t channels() const override { return c_; }
  int64_t num_classes() const override { return k_; }
  void open(const StreamOptions& o) override;
  int64_t steps_per_epoch() const override { return n_ / opt_.global_batch; }
  DataBatch next() override;
  nlohmann::json position() const override { return {{"step", step_}}; }
  void seek(const nlohmann::json& pos) override { step_ = pos.at("step").get<int64_t>(); }
  std::string order_signature() const override;
  diffusion::LatentStats latent_stats() const override;
  std::string describe() const override;
  void read(const std::vector<int64_t>& ids, float* latents, int32_t* labels) const;

 private:
  const std::vector<int64_t>& perm(int64_t epoch);
  int64_t n_, grid_, c_, k_;
  uint64_t data_seed_;
  double noise_;
  bool materialize_;
  Tensor all_;  // (n, T, C) when materialized
  StreamOptions opt_;
  int64_t step_ = 0, cached_epoch_ = -1;
  std::vector<int64_t> perm_;
};

// The data layer's latent cache (HDF5 shards + manifest) as a stream. Its signature is the
// reader's order signature (data/latent_cache_reader.h) plus the XXH64 of the manifest (the
// cache's identity); its statistics are the cache's stats.safetensors.
std::unique_ptr<BatchStream> open_latent_cache(const std::string& dir);

}  // namespace rae::train
