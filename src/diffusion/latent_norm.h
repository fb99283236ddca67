// Latent normalisation of the RAE release (src/stage1/rae.py, RAE.encode / RAE.decode): with the
// per-element dataset statistics of the latent cache (mean, population variance over the
// (tokens, channels) grid, data/latent_cache_stats.h),
//   normalize:    z' = (z - mean) / sqrt(var + eps)      eps = 1e-5
//   denormalize:  z  = z' * sqrt(var + eps) + mean
// computed per element in float32 with correctly rounded sqrt and division, so the CPU and CUDA
// versions give the same bits. tests/diffusion/test_latent_norm.cpp checks the release's formula
// run by PyTorch in float32 (tests/reference/make_latent_norm_golden.py) to one ulp: PyTorch's
// vectorised CPU sqrt is off by one ulp on a few elements. Stage-2 training normalises every
// batch (data.normalize, on by default as in the release); the statistics are stored in
// checkpoints and exports (tensors kLatentMeanName / kLatentVarName, metadata kLatentEpsKey) so
// sampling can undo it.
#pragma once
#include <map>
#include <string>

#include "tensor/tensor.h"

namespace rae::diffusion {

constexpr const char* kLatentMeanName = "latent_stats.mean";
constexpr const char* kLatentVarName = "latent_stats.var";
constexpr const char* kLatentEpsKey = "latent_stats_eps";
constexpr double kLatentNormEps = 1e-5;  // the release's RAE(eps=1e-5)

struct LatentStats {
  Tensor mean, var;  // (T, C) F32
  double eps = kLatentNormEps;

  bool defined() const { return mean.defined(); }
  LatentStats to(Device device) const;
  // Shapes (T, C), F32, no negative variance; errors name `where`.
  void check(int64_t tokens, int64_t channels, const std::string& where) const;
  // As safetensors tensors + metadata, and back (absent tensors: undefined stats).
  void store(std::map<std::string, Tensor>& tensors,
             std::map<std::string, std::string>& metadata) const;
  static LatentStats load(const std::map<std::string, Tensor>& tensors,
                          const std::map<std::string, std::string>& metadata,
                          const std::string& where);
};

// z (B, T, C) F32, in place; the stats live on z's device.
void normalize_latents(const Tensor& z, const LatentStats& s);
void denormalize_latents(const Tensor& z, const LatentStats& s);

namespace cuda {
void normalize_latents(const Tensor& z, const LatentStats& s);
void denormalize_latents(const Tensor& z, const LatentStats& s);
}  // namespace cuda

}  // namespace rae::diffusion
