// CPU LeakyReLU (ReLU = slope 0), forward and backward, over row-strided tensors.
#include "ops/relu.h"

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

void leaky_relu_forward(const Tensor& out, const Tensor& x, double slope) {
  float_dispatch(x.dtype(), "leaky_relu_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), xr = rows_of<T>(x);
    const T s = static_cast<T>(slope);
    parallel_blocks(xr.n, row_grain(xr.c), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* a = xr.row(i);
        T* y = o.row(i);
        for (int64_t j = 0; j < xr.c; ++j) y[j] = a[j] > T(0) ? a[j] : a[j] * s;
      }
    });
  });
}

void leaky_relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double slope) {
  float_dispatch(x.dtype(), "leaky_relu_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> g = rows_of<T>(dx), d = rows_of<T>(dout), xr = rows_of<T>(x);
    const T s = static_cast<T>(slope);
    parallel_blocks(xr.n, row_grain(xr.c), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T *a = xr.row(i), *dy = d.row(i);
        T* ga = g.row(i);
        for (int64_t j = 0; j < xr.c; ++j) ga[j] += a[j] > T(0) ? dy[j] : dy[j] * s;
      }
    });
  });
}

}  // namespace rae::ops::cpu
