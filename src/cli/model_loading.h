// Token layout helpers of the model commands ((B, C, H, W) images <-> (B, T, C) tokens).
// Models themselves load through diffusion/sampling_model.h.
#pragma once
#include "core/error.h"
#include "tensor/tensor.h"

namespace rae::cli {

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
