// Loading a DiT^DH from a safetensors state dict (our checkpoints or converted release ones).
#pragma once
#include <memory>
#include <string>

#include "io/safetensors.h"
#include "models/dit.h"

namespace rae::cli {

inline std::unique_ptr<models::DiTDH> load_dit(const std::string& path) {
  safetensors::File f = safetensors::load(path);
  models::DiTConfig c = models::infer_dit_config(f.tensors, f.metadata);
  auto m = std::make_unique<models::DiTDH>(c);
  m->params().load_state_dict(f.tensors, path);
  return m;
}

// (B, C, H, W) -> (B, H*W, C) tokens, or a (B, T, C) tensor as it is (contiguous F32).
inline Tensor to_tokens(const Tensor& x) {
  Tensor f = x.dtype() == DType::F32 ? x.clone() : x.cast(DType::F32);
  if (f.ndim() == 3) return f;
  RAE_CHECK(f.ndim() == 4, "expected (B, T, C) or (B, C, H, W), got ", f.shape().str());
  const int64_t B = f.dim(0), C = f.dim(1), T = f.dim(2) * f.dim(3);
  Tensor out = Tensor::empty({B, T, C});
  const float* s = f.data<float>();
  float* d = out.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < T; ++t) d[(b * T + t) * C + c] = s[(b * C + c) * T + t];
  return out;
}

// (B, T, C) tokens -> (B, C, H, W) with H = W = sqrt(T).
inline Tensor to_image(const Tensor& tok, int64_t grid) {
  const int64_t B = tok.dim(0), T = tok.dim(1), C = tok.dim(2);
  Tensor out = Tensor::empty({B, C, grid, grid});
  const float* s = tok.data<float>();
  float* d = out.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) d[(b * C + c) * T + t] = s[(b * T + t) * C + c];
  return out;
}

}  // namespace rae::cli
