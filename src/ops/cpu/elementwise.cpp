// CPU elementwise ops, reductions (in double, deterministic chunking), MSE and flow interpolation.
#include "ops/elementwise.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// fn(i) for every row i of an (N, C) row-strided layout.
template <typename Fn>
void each_row(int64_t n, int64_t c, Fn&& fn) {
  parallel_blocks(n, row_grain(c), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) fn(i);
  });
}

// Reads element i of a contiguous F32 or F64 tensor as double.
inline double load(const Tensor& t, int64_t i) {
  return t.dtype() == DType::F64 ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
}

}  // namespace

void add_(const Tensor& y, const Tensor& x, double alpha) {
  float_dispatch(y.dtype(), "add_", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> a = rows_of<T>(y), b = rows_of<T>(x);
    const T al = static_cast<T>(alpha);
    each_row(a.n, a.c, [&](int64_t i) {
      T* p = a.row(i);
      const T* q = b.row(i);
      for (int64_t j = 0; j < a.c; ++j) p[j] += al * q[j];
    });
  });
}

void scale_(const Tensor& x, double alpha) {
  float_dispatch(x.dtype(), "scale_", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> a = rows_of<T>(x);
    const T al = static_cast<T>(alpha);
    each_row(a.n, a.c, [&](int64_t i) {
      T* p = a.row(i);
      for (int64_t j = 0; j < a.c; ++j) p[j] *= al;
    });
  });
}

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  float_dispatch(a.dtype(), "add", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), x = rows_of<T>(a), y = rows_of<T>(b);
    each_row(o.n, o.c, [&](int64_t i) {
      T* p = o.row(i);
      const T *u = x.row(i), *v = y.row(i);
      for (int64_t j = 0; j < o.c; ++j) p[j] = u[j] + v[j];
    });
  });
}

void add_rowwise(const Tensor& out, const Tensor& x, const Tensor& row) {
  float_dispatch(x.dtype(), "add_rowwise", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), a = rows_of<T>(x);
    const T* table = ptr<T>(row);
    const int64_t R = row.ndim() == 2 ? row.dim(0) : 1;
    each_row(o.n, o.c, [&](int64_t i) {
      T* p = o.row(i);
      const T *u = a.row(i), *r = table + (i % R) * o.c;
      for (int64_t j = 0; j < o.c; ++j) p[j] = u[j] + r[j];
    });
  });
}

void add_rowwise_backward(const Tensor& drow, const Tensor& dout) {
  float_dispatch(dout.dtype(), "add_rowwise_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> d = rows_of<T>(dout);
    const int64_t R = drow.ndim() == 2 ? drow.dim(0) : 1, C = d.c;
    // reduce (N / R, R * C): table row r collects dout rows r, r + R, r + 2R, ...
    std::vector<double> s = column_reduce(d.n / R, R * C, [&](int64_t k, double* acc) {
      for (int64_t r = 0; r < R; ++r) {
        const T* src = d.row(k * R + r);
        for (int64_t j = 0; j < C; ++j) acc[r * C + j] += src[j];
      }
    });
    T* g = ptr<T>(drow);
    for (int64_t j = 0; j < R * C; ++j) g[j] += static_cast<T>(s[j]);
  });
}

double sum_squares(const Tensor& x) {
  double total = 0;
  float_dispatch(x.dtype(), "sum_squares", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> a = rows_of<T>(x);
    total = scalar_reduce(a.n * a.c, [&](int64_t k) {
      double v = a.row(k / std::max<int64_t>(a.c, 1))[k % std::max<int64_t>(a.c, 1)];
      return v * v;
    });
  });
  return total;
}

bool all_finite(const Tensor& x) {
  double bad = 0;
  float_dispatch(x.dtype(), "all_finite", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> a = rows_of<T>(x);
    bad = scalar_reduce(a.n * a.c, [&](int64_t k) {
      T v = a.row(k / std::max<int64_t>(a.c, 1))[k % std::max<int64_t>(a.c, 1)];
      return std::isfinite(v) ? 0.0 : 1.0;
    });
  });
  return bad == 0;
}

double mse_forward(const Tensor& pred, const Tensor& target) {
  double total = 0;
  float_dispatch(pred.dtype(), "mse_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> p = rows_of<T>(pred), q = rows_of<T>(target);
    const int64_t c = std::max<int64_t>(p.c, 1);
    total = scalar_reduce(p.n * p.c, [&](int64_t k) {
      double d =
          static_cast<double>(p.row(k / c)[k % c]) - static_cast<double>(q.row(k / c)[k % c]);
      return d * d;
    });
  });
  return total / static_cast<double>(pred.numel());
}

void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale) {
  float_dispatch(pred.dtype(), "mse_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> g = rows_of<T>(dpred), p = rows_of<T>(pred), q = rows_of<T>(target);
    const T k = static_cast<T>(2.0 * scale / static_cast<double>(pred.numel()));
    each_row(p.n, p.c, [&](int64_t i) {
      T* gi = g.row(i);
      const T *pi = p.row(i), *qi = q.row(i);
      for (int64_t j = 0; j < p.c; ++j) gi[j] += k * (pi[j] - qi[j]);
    });
  });
}

void flow_interpolate(const Tensor& xt, const Tensor& target, const Tensor& x, const Tensor& eps,
                      const Tensor& t) {
  float_dispatch(x.dtype(), "flow_interpolate", [&](auto tag) {
    using T = decltype(tag);
    const int64_t B = x.dim(0), per = B ? x.numel() / B : 0;
    const T *xp = ptr<T>(x), *ep = ptr<T>(eps);
    T *xtp = ptr<T>(xt), *tg = ptr<T>(target);
    each_row(B, per, [&](int64_t b) {
      const T tb = static_cast<T>(load(t, b));
      const int64_t o = b * per;
      for (int64_t j = o; j < o + per; ++j) {
        xtp[j] = (T(1) - tb) * xp[j] + tb * ep[j];
        tg[j] = ep[j] - xp[j];
      }
    });
  });
}

}  // namespace rae::ops::cpu
