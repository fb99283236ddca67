// Synthetic latent caches for smoke tests and benchmarks. Each class k has a fixed random pattern
// mu_k (standard normal per element, RNG purpose Test, step 1, index k); sample g of class y_g is
// mu_{y_g} + noise_std * eps_g (eps_g: step 2, index g), y_g uniform over the classes (step 3).
// The flipped view mirrors the token grid along W. A diffusion model can learn the class means.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "data/latent_cache_manifest.h"

namespace rae::cache {

struct SynthOptions {
  std::string out;  // cache directory (created)
  int64_t samples = 0;
  int64_t grid_h = 0, grid_w = 0, channels = 0;
  int64_t classes = 1;
  int64_t shard_size = 4096;
  StorageDType dtype = StorageDType::BF16;
  uint64_t seed = 0;
  bool flip = false;       // also write latents_flip
  float noise_std = 0.3f;  // per-sample noise around the class pattern
  bool overwrite = false;  // replace a cache in `out` (else a non-empty `out` is an error)
  // Test hook: called on each sample (and its flipped view) before it is written, so that a
  // fault test can write wrong values that pass every checksum (tests/faults/).
  std::function<void(int64_t index, float* sample, int64_t elements)> alter;
};

// The value of synthetic sample `index` (f32, (H*W*C) written to out) and its label.
int32_t synth_sample(const SynthOptions& o, int64_t index, float* out, bool flipped = false);

// Writes shards, stats.safetensors and manifest.json; returns the manifest. A non-empty `out` is
// an error unless `overwrite` (data/output_dir.h: then its cache files are replaced).
Manifest write_synthetic_cache(const SynthOptions& o);

}  // namespace rae::cache
