// CPU pointwise activations: GELU (erf and tanh forms), SiLU and SwiGLU, forward and backward.
// Float SiLU/SwiGLU rows run in the vector kernels of cpu/vec_math.cpp (polynomial exp); double
// keeps libm.
#include "ops/activation.h"

#include <cmath>
#include <type_traits>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;     // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)
constexpr double kSqrt2_Pi = 0.79788456080286535588;    // sqrt(2 / pi)
constexpr double kGeluC = 0.044715;

template <typename T>
T gelu(T x, GeluKind kind) {
  if (kind == GeluKind::Exact) return T(0.5) * x * (T(1) + std::erf(x * T(kSqrt1_2)));
  T u = T(kSqrt2_Pi) * (x + T(kGeluC) * x * x * x);
  return T(0.5) * x * (T(1) + std::tanh(u));
}

template <typename T>
T gelu_grad(T x, GeluKind kind) {
  if (kind == GeluKind::Exact)
    return T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2))) +
           x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  T u = T(kSqrt2_Pi) * (x + T(kGeluC) * x * x * x);
  T th = std::tanh(u);
  T du = T(kSqrt2_Pi) * (T(1) + T(3 * kGeluC) * x * x);
  return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du;
}

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Applies fn(out_row, in_rows...) over the rows of equally shaped row-strided tensors.
template <typename T, typename Fn>
void rowwise(int64_t n, int64_t c, Fn&& fn) {
  parallel_blocks(n, row_grain(c), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) fn(i);
  });
}

}  // namespace

void gelu_forward(const Tensor& out, const Tensor& x, GeluKind kind) {
  float_dispatch(x.dtype(), "gelu_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), xr = rows_of<T>(x);
    rowwise<T>(xr.n, xr.c, [&](int64_t i) {
      const T* a = xr.row(i);
      T* y = o.row(i);
      for (int64_t j = 0; j < xr.c; ++j) y[j] = gelu(a[j], kind);
    });
  });
}

void gelu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, GeluKind kind) {
  float_dispatch(x.dtype(), "gelu_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> g = rows_of<T>(dx), d = rows_of<T>(dout), xr = rows_of<T>(x);
    rowwise<T>(xr.n, xr.c, [&](int64_t i) {
      const T *a = xr.row(i), *dy = d.row(i);
      T* ga = g.row(i);
      for (int64_t j = 0; j < xr.c; ++j) ga[j] += dy[j] * gelu_grad(a[j], kind);
    });
  });
}

void silu_forward(const Tensor& out, const Tensor& x) {
  float_dispatch(x.dtype(), "silu_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), xr = rows_of<T>(x);
    rowwise<T>(xr.n, xr.c, [&](int64_t i) {
      const T* a = xr.row(i);
      T* y = o.row(i);
      if constexpr (std::is_same_v<T, float>) {
        silu_row(a, y, xr.c);  // vectorised (cpu/vec_math.cpp)
      } else {
        for (int64_t j = 0; j < xr.c; ++j) y[j] = a[j] * sigmoid(a[j]);
      }
    });
  });
}

void silu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x) {
  float_dispatch(x.dtype(), "silu_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> g = rows_of<T>(dx), d = rows_of<T>(dout), xr = rows_of<T>(x);
    rowwise<T>(xr.n, xr.c, [&](int64_t i) {
      const T *a = xr.row(i), *dy = d.row(i);
      T* ga = g.row(i);
      if constexpr (std::is_same_v<T, float>) {
        silu_backward_row(a, dy, ga, xr.c);
      } else {
        for (int64_t j = 0; j < xr.c; ++j) {
          T s = sigmoid(a[j]);
          ga[j] += dy[j] * s * (T(1) + a[j] * (T(1) - s));
        }
      }
    });
  });
}

void swiglu_forward(const Tensor& out, const Tensor& x12) {
  float_dispatch(x12.dtype(), "swiglu_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), xr = rows_of<T>(x12);
    const int64_t H = o.c;
    rowwise<T>(xr.n, xr.c, [&](int64_t i) {
      const T *x1 = xr.row(i), *x2 = x1 + H;
      T* y = o.row(i);
      if constexpr (std::is_same_v<T, float>) {
        swiglu_row(x1, x2, y, H);
      } else {
        for (int64_t j = 0; j < H; ++j) y[j] = x1[j] * sigmoid(x1[j]) * x2[j];
      }
    });
  });
}

void swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12, GradMode mode) {
  float_dispatch(x12.dtype(), "swiglu_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> g = rows_of<T>(dx12), d = rows_of<T>(dout), xr = rows_of<T>(x12);
    const int64_t H = d.c;
    const bool overwrite = mode == GradMode::Overwrite;
    rowwise<T>(xr.n, xr.c, [&](int64_t i) {
      const T *x1 = xr.row(i), *x2 = x1 + H, *dy = d.row(i);
      T *g1 = g.row(i), *g2 = g1 + H;
      // Overwrite: the row is zeroed here, in cache, right before the kernel adds into it (the
      // same values as a zero-filled buffer, without a separate pass over memory).
      if (overwrite) std::fill(g1, g1 + 2 * H, T(0));
      if constexpr (std::is_same_v<T, float>) {
        swiglu_backward_row(x1, x2, dy, g1, g2, H);
        return;
      }
      for (int64_t j = 0; j < H; ++j) {
        T s = sigmoid(x1[j]);
        T silu = x1[j] * s;
        g1[j] += dy[j] * x2[j] * s * (T(1) + x1[j] * (T(1) - s));
        g2[j] += dy[j] * silu;
      }
    });
  });
}

}  // namespace rae::ops::cpu
