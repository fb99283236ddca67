// Token layout helpers of the model commands ((B, C, H, W) images <-> (B, T, C) tokens).
// Models themselves load through diffusion/sampling_model.h.
#pragma once
#include "core/error.h"
#include "ops/embed.h"
#include "sampling/decode.h"
#include "tensor/tensor.h"

namespace rae::cli {

// (B, C, H, W) -> (B, H*W, C) tokens, or a (B, T, C) tensor as it is (contiguous F32).
inline Tensor to_tokens(const Tensor& x) {
  if (x.ndim() == 4) return sampling::chw_to_tokens(x);
  RAE_CHECK(x.ndim() == 3, "expected (B, T, C) or (B, C, H, W), got ", x.shape().str());
  return x.dtype() == DType::F32 ? x.clone() : x.cast(DType::F32);
}

// (B, T, C) tokens -> (B, C, H, W) with H = W = grid.
inline Tensor to_image(const Tensor& tok, int64_t grid) {
  Tensor out = Tensor::empty({tok.dim(0), tok.dim(2), grid, grid});
  ops::unpatchify(out, tok.is_contiguous() ? tok : tok.clone(), 1);  // patch 1: a transpose
  return out;
}

}  // namespace rae::cli
