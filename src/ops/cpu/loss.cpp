// CPU stage-1 losses: sums in double over fixed chunks (scalar_reduce), so every result repeats
// bit for bit whatever the thread count.
#include "ops/loss.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

template <typename Fn>
void each(int64_t n, Fn&& fn) {
  parallel_blocks(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) fn(i);
  });
}

template <typename T>
double sign_of(T v) {
  return v > T(0) ? 1.0 : (v < T(0) ? -1.0 : 0.0);
}

// Per row of (M, C): r = ||fx||, and the normalised difference nx - ny into `diff` (C doubles).
template <typename T>
double normalised_diff(const T* fx, const T* fy, int64_t C, double eps, double* diff) {
  double sx = 0, sy = 0;
  for (int64_t c = 0; c < C; ++c) {
    sx += static_cast<double>(fx[c]) * fx[c];
    sy += static_cast<double>(fy[c]) * fy[c];
  }
  const double rx = std::sqrt(sx), ry = std::sqrt(sy);
  const double ax = 1.0 / (rx + eps), ay = 1.0 / (ry + eps);
  for (int64_t c = 0; c < C; ++c) diff[c] = fx[c] * ax - fy[c] * ay;
  return rx;
}

}  // namespace

double l1_forward(const Tensor& pred, const Tensor& target) {
  double s = 0;
  float_dispatch(pred.dtype(), "l1_forward", [&](auto tag) {
    using T = decltype(tag);
    const T *p = ptr<T>(pred), *t = ptr<T>(target);
    s = scalar_reduce(pred.numel(), [&](int64_t i) { return std::abs(double(p[i]) - t[i]); });
  });
  return s / static_cast<double>(pred.numel());
}

void l1_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale) {
  float_dispatch(pred.dtype(), "l1_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *p = ptr<T>(pred), *t = ptr<T>(target);
    T* d = ptr<T>(dpred);
    const double k = scale / static_cast<double>(pred.numel());
    each(pred.numel(), [&](int64_t i) { d[i] += static_cast<T>(k * sign_of<T>(p[i] - t[i])); });
  });
}

double hinge_forward(const Tensor& x, double sign) {
  double s = 0;
  float_dispatch(x.dtype(), "hinge_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* p = ptr<T>(x);
    s = scalar_reduce(x.numel(), [&](int64_t i) { return std::max(0.0, 1.0 + sign * p[i]); });
  });
  return s / static_cast<double>(x.numel());
}

void hinge_backward(const Tensor& dx, const Tensor& x, double sign, double scale) {
  float_dispatch(x.dtype(), "hinge_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* p = ptr<T>(x);
    T* d = ptr<T>(dx);
    const T k = static_cast<T>(sign * scale / static_cast<double>(x.numel()));
    each(x.numel(), [&](int64_t i) {
      if (1.0 + sign * p[i] > 0) d[i] += k;
    });
  });
}

double mean_forward(const Tensor& x) {
  double s = 0;
  float_dispatch(x.dtype(), "mean_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* p = ptr<T>(x);
    s = scalar_reduce(x.numel(), [&](int64_t i) { return static_cast<double>(p[i]); });
  });
  return s / static_cast<double>(x.numel());
}

void mean_backward(const Tensor& dx, double scale) {
  float_dispatch(dx.dtype(), "mean_backward", [&](auto tag) {
    using T = decltype(tag);
    T* d = ptr<T>(dx);
    const T k = static_cast<T>(scale / static_cast<double>(dx.numel()));
    each(dx.numel(), [&](int64_t i) { d[i] += k; });
  });
}

int64_t count_greater(const Tensor& a, const Tensor& b) {
  double s = 0;
  float_dispatch(a.dtype(), "count_greater", [&](auto tag) {
    using T = decltype(tag);
    const T *p = ptr<T>(a), *q = ptr<T>(b);
    s = scalar_reduce(a.numel(), [&](int64_t i) { return p[i] > q[i] ? 1.0 : 0.0; });
  });
  return static_cast<int64_t>(s);
}

double lpips_distance_forward(const Tensor& fx, const Tensor& fy, const Tensor& w, double eps) {
  const int64_t C = check::cols(fx), M = fx.numel() / C;
  double s = 0;
  float_dispatch(fx.dtype(), "lpips_distance_forward", [&](auto tag) {
    using T = decltype(tag);
    const T *x = ptr<T>(fx), *y = ptr<T>(fy), *wp = ptr<T>(w);
    // One row per term; rows in fixed chunks (scalar_reduce), a scratch row per call.
    s = scalar_reduce(M, [&](int64_t r) {
      thread_local std::vector<double> diff;
      diff.resize(static_cast<size_t>(C));
      normalised_diff(x + r * C, y + r * C, C, eps, diff.data());
      double d = 0;
      for (int64_t c = 0; c < C; ++c) d += static_cast<double>(wp[c]) * diff[c] * diff[c];
      return d;
    });
  });
  return s / static_cast<double>(M);
}

void lpips_distance_backward(const Tensor& dfx, const Tensor& fx, const Tensor& fy, const Tensor& w,
                             double eps, double scale) {
  const int64_t C = check::cols(fx), M = fx.numel() / C;
  float_dispatch(fx.dtype(), "lpips_distance_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *x = ptr<T>(fx), *y = ptr<T>(fy), *wp = ptr<T>(w);
    T* dx = ptr<T>(dfx);
    const double k = 2.0 * scale / static_cast<double>(M);
    parallel_blocks(M, row_grain(C), [&](int64_t r0, int64_t r1) {
      std::vector<double> g(static_cast<size_t>(C));
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = x + r * C;
        const double rx = normalised_diff(xr, y + r * C, C, eps, g.data());
        double gf = 0;
        for (int64_t c = 0; c < C; ++c) {
          g[c] *= k * static_cast<double>(wp[c]);
          gf += g[c] * xr[c];
        }
        const double a = 1.0 / (rx + eps);
        const double b = rx > 0 ? gf * a * a / rx : 0.0;
        T* d = dx + r * C;
        for (int64_t c = 0; c < C; ++c) d[c] += static_cast<T>(g[c] * a - xr[c] * b);
      }
    });
  });
}

}  // namespace rae::ops::cpu
