// Helpers shared by the sampling tests.
#pragma once
#include <algorithm>
#include <cmath>

#include "tensor/tensor.h"

namespace rae::test {

// (N, C, H, W) -> (N, H*W, C) in F64 (the release's latent layout to our tokens).
inline Tensor nchw_to_tokens(const Tensor& x) {
  const int64_t N = x.dim(0), C = x.dim(1), T = x.dim(2) * x.dim(3);
  Tensor out = Tensor::empty({N, T, C}, DType::F64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < T; ++t)
        out.data<double>()[(n * T + t) * C + c] = x.item((n * C + c) * T + t);
  return out;
}

// max |a - b| / max |b|: the relative error of a whole batch of latents.
inline double rel_error(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    num = std::max(num, std::abs(a.item(i) - b.item(i)));
    den = std::max(den, std::abs(b.item(i)));
  }
  return num / den;
}

}  // namespace rae::test
