// CPU circular padding of (N, L, C) sequences.
#include "ops/pad.h"

#include <cstring>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

void pad_circular1d_forward(const Tensor& out, const Tensor& x, int64_t pad) {
  const int64_t N = x.dim(0), L = x.dim(1), C = x.dim(2), P = L + 2 * pad;
  float_dispatch(x.dtype(), "pad_circular1d_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_blocks(N * P, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / P, i = r % P;
        const int64_t j = ((i - pad) % L + L) % L;
        std::memcpy(op + r * C, xp + (n * L + j) * C, static_cast<size_t>(C) * sizeof(T));
      }
    });
  });
}

void pad_circular1d_backward(const Tensor& dx, const Tensor& dout, int64_t pad) {
  const int64_t N = dx.dim(0), L = dx.dim(1), C = dx.dim(2), P = L + 2 * pad;
  float_dispatch(dx.dtype(), "pad_circular1d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* dp = ptr<T>(dout);
    T* xp = ptr<T>(dx);
    parallel_blocks(N * L, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / L, j = r % L;
        T* g = xp + r * C;
        // Padded positions reading x[j]: j + pad, and j + pad -+ L where inside [0, P).
        for (int64_t i : {j + pad - L, j + pad, j + pad + L}) {
          if (i < 0 || i >= P) continue;
          const T* d = dp + (n * P + i) * C;
          for (int64_t c = 0; c < C; ++c) g[c] += d[c];
        }
      }
    });
  });
}

}  // namespace rae::ops::cpu
