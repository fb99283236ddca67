// CPU LayerNorm, RMSNorm and fused RMSNorm + adaLN modulation, forward and backward. Row
// statistics accumulate in double; weight gradients reduce over fixed row chunks so results do
// not depend on the thread count.
#include "ops/norm.h"

#include <cmath>
#include <type_traits>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

template <typename Fn>
void each_row(int64_t n, int64_t c, Fn&& fn) {
  parallel_blocks(n, row_grain(c), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) fn(i);
  });
}

// 1 / sqrt(mean(x^2) + eps) of one row.
template <typename T>
double row_rstd(const T* x, int64_t c, double eps) {
  // lane accumulators (cpu/vec_math.cpp): one serial double chain ran at add latency
  return 1.0 / std::sqrt(sum_squares(x, c) / static_cast<double>(c) + eps);
}

// Adds into dx the RMSNorm input gradient of one row, given g = dL/d(xhat) where
// xhat = x * rstd: dx += rstd * (g - xhat * mean(g * xhat)).
template <typename T>
void rms_row_backward(T* dx, const T* x, const double* g, double rstd, int64_t c) {
  double dot = 0;
  for (int64_t j = 0; j < c; ++j) dot += g[j] * (x[j] * rstd);
  const double m = dot / static_cast<double>(c);
  for (int64_t j = 0; j < c; ++j) dx[j] += static_cast<T>(rstd * (g[j] - x[j] * rstd * m));
}

// One token row of rmsnorm_modulate_backward, scalar (the double path; float runs the vector
// kernel rms_modulate_backward_row with the same arithmetic).
template <typename T>
void rms_modulate_backward_generic(const T* a, const T* dy, const T* s, const T* wp, double r,
                                   std::vector<double>& ssh, std::vector<double>& ssc,
                                   std::vector<double>& dw_part, int64_t bi,
                                   std::vector<double>& gy, const Rows<T>& g, int64_t i,
                                   int64_t C) {
  for (int64_t j = 0; j < C; ++j) {
    const double xh = a[j] * r;                                   // normalized x
    const double n = wp ? xh * wp[j] : xh;                        // rmsnorm output
    const double dn = dy[j] * (1.0 + static_cast<double>(s[j]));  // d rmsnorm output
    ssh[j] += dy[j];
    ssc[j] += dy[j] * n;
    gy[j] = wp ? dn * wp[j] : dn;  // d xhat
    if (!dw_part.empty()) dw_part[bi * C + j] += dn * xh;
  }
  if (g.p) rms_row_backward(g.row(i), a, gy.data(), r, C);
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps) {
  float_dispatch(x.dtype(), "layernorm_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    T *mu = ptr<T>(mean), *rs = ptr<T>(rstd);
    const T *wp = ptr<T>(w), *bp = ptr<T>(b);
    const int64_t C = xr.c;
    each_row(xr.n, C, [&](int64_t i) {
      const T* a = xr.row(i);
      double s = 0;
      for (int64_t j = 0; j < C; ++j) s += a[j];
      const double m = s / C;
      double v = 0;
      for (int64_t j = 0; j < C; ++j) v += (a[j] - m) * (a[j] - m);
      const double r = 1.0 / std::sqrt(v / C + eps);  // biased variance, as torch
      mu[i] = static_cast<T>(m);
      rs[i] = static_cast<T>(r);
      T* y = o.row(i);
      for (int64_t j = 0; j < C; ++j) {
        double h = (a[j] - m) * r;
        if (wp) h *= wp[j];
        if (bp) h += bp[j];
        y[j] = static_cast<T>(h);
      }
    });
  });
}

void layernorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd) {
  float_dispatch(x.dtype(), "layernorm_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout);
    const T *mu = ptr<T>(mean), *rs = ptr<T>(rstd), *wp = ptr<T>(w);
    const int64_t C = xr.c;
    if (dx.defined()) {
      Rows<T> g = rows_of<T>(dx);
      each_row(xr.n, C, [&](int64_t i) {
        const T *a = xr.row(i), *dy = d.row(i);
        const double m = mu[i], r = rs[i];
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < C; ++j) {
          double gj = wp ? dy[j] * static_cast<double>(wp[j]) : dy[j];
          sg += gj;
          sgx += gj * (a[j] - m) * r;
        }
        sg /= C;
        sgx /= C;
        T* gx = g.row(i);
        for (int64_t j = 0; j < C; ++j) {
          double gj = wp ? dy[j] * static_cast<double>(wp[j]) : dy[j];
          gx[j] += static_cast<T>(r * (gj - sg - (a[j] - m) * r * sgx));
        }
      });
    }
    if (dw.defined() || db.defined()) {
      // acc = [dw (C) | db (C)]
      std::vector<double> s = column_reduce(xr.n, 2 * C, [&](int64_t i, double* acc) {
        const T *a = xr.row(i), *dy = d.row(i);
        const double m = mu[i], r = rs[i];
        for (int64_t j = 0; j < C; ++j) {
          acc[j] += dy[j] * (a[j] - m) * r;
          acc[C + j] += dy[j];
        }
      });
      if (T* gw = ptr<T>(dw))
        for (int64_t j = 0; j < C; ++j) gw[j] += static_cast<T>(s[j]);
      if (T* gb = ptr<T>(db))
        for (int64_t j = 0; j < C; ++j) gb[j] += static_cast<T>(s[C + j]);
    }
  });
}

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                     double eps) {
  float_dispatch(x.dtype(), "rmsnorm_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    T* rs = ptr<T>(rstd);
    const T* wp = ptr<T>(w);
    const int64_t C = xr.c;
    each_row(xr.n, C, [&](int64_t i) {
      const T* a = xr.row(i);
      const double r = row_rstd(a, C, eps);
      rs[i] = static_cast<T>(r);
      T* y = o.row(i);
      for (int64_t j = 0; j < C; ++j) {
        // torch: (x * rstd) cast back to x's dtype, then * weight
        T h = static_cast<T>(a[j] * r);
        y[j] = wp ? h * wp[j] : h;
      }
    });
  });
}

void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                      const Tensor& w, const Tensor& rstd) {
  float_dispatch(x.dtype(), "rmsnorm_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout);
    const T *rs = ptr<T>(rstd), *wp = ptr<T>(w);
    const int64_t C = xr.c;
    if (dx.defined()) {
      Rows<T> g = rows_of<T>(dx);
      each_row(xr.n, C, [&](int64_t i) {
        const T* dy = d.row(i);
        std::vector<double> gh(C);
        for (int64_t j = 0; j < C; ++j) gh[j] = wp ? dy[j] * static_cast<double>(wp[j]) : dy[j];
        rms_row_backward(g.row(i), xr.row(i), gh.data(), static_cast<double>(rs[i]), C);
      });
    }
    if (dw.defined()) {
      std::vector<double> s = column_reduce(xr.n, C, [&](int64_t i, double* acc) {
        const T *a = xr.row(i), *dy = d.row(i);
        const double r = rs[i];
        for (int64_t j = 0; j < C; ++j) acc[j] += dy[j] * (a[j] * r);
      });
      T* gw = ptr<T>(dw);
      for (int64_t j = 0; j < C; ++j) gw[j] += static_cast<T>(s[j]);
    }
  });
}

void rmsnorm_modulate_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& w, const Tensor& shift, const Tensor& scale,
                              double eps) {
  float_dispatch(x.dtype(), "rmsnorm_modulate_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    const int64_t Tn = x.dim(1), C = xr.c;
    CondRows<T> sh = cond_rows_of<T>(shift, Tn), sc = cond_rows_of<T>(scale, Tn);
    T* rs = ptr<T>(rstd);
    // absent weight / shift read as ones / zeros, so the row kernel has no branches
    std::vector<T> ones(w.defined() ? 0 : static_cast<size_t>(C), T(1));
    std::vector<T> zeros(shift.defined() ? 0 : static_cast<size_t>(C), T(0));
    const T* wp = w.defined() ? ptr<T>(w) : ones.data();
    each_row(xr.n, C, [&](int64_t i) {
      const T* a = xr.row(i);
      const double r = row_rstd(a, C, eps);
      rs[i] = static_cast<T>(r);
      rms_modulate_row(a, r, wp, sc.row(i), sh.defined() ? sh.row(i) : zeros.data(), o.row(i), C);
    });
  });
}

void rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                               const Tensor& dscale, const Tensor& dout, const Tensor& x,
                               const Tensor& w, const Tensor& scale, const Tensor& rstd,
                               GradMode mode) {
  const bool overwrite = mode == GradMode::Overwrite;  // dshift, dscale written
  float_dispatch(x.dtype(), "rmsnorm_modulate_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout);
    const int64_t B = x.dim(0), Tn = x.dim(1), C = xr.c;
    CondRows<T> sc = cond_rows_of<T>(scale, Tn), gsh = cond_rows_of<T>(dshift, Tn),
                gsc = cond_rows_of<T>(dscale, Tn);
    const T *rs = ptr<T>(rstd), *wp = ptr<T>(w);
    Rows<T> g = rows_of<T>(dx);
    // One task per sample: it owns the sample's per-sample dshift/dscale rows and its rows of dx;
    // dw partials are kept per sample and added in order afterwards.
    std::vector<double> dw_part(dw.defined() ? static_cast<size_t>(B * C) : 0, 0.0);
    std::vector<T> ones(wp ? 0 : static_cast<size_t>(C), T(1));
    parallel_blocks(B, std::max<int64_t>(1, row_grain(Tn * C)), [&](int64_t b0, int64_t b1) {
      std::vector<double> gy(C), ssh(C), ssc(C), dw_scratch(dw_part.empty() ? C : 0);
      for (int64_t bi = b0; bi < b1; ++bi) {
        std::fill(ssh.begin(), ssh.end(), 0.0);
        std::fill(ssc.begin(), ssc.end(), 0.0);
        for (int64_t t = 0; t < Tn; ++t) {
          const int64_t i = bi * Tn + t;
          const T *a = xr.row(i), *dy = d.row(i), *s = sc.row(i);
          const double r = rs[i];
          if constexpr (std::is_same_v<T, float>) {  // vectorised (cpu/vec_math.cpp)
            double* dwr = dw_part.empty() ? dw_scratch.data() : dw_part.data() + bi * C;
            rms_modulate_backward_row(a, dy, s, wp ? wp : ones.data(), r, ssh.data(), ssc.data(),
                                      dwr, gy.data(), g.p ? g.row(i) : nullptr, C);
          } else {
            rms_modulate_backward_generic(a, dy, s, wp, r, ssh, ssc, dw_part, bi, gy, g, i, C);
          }
          const bool last = t == Tn - 1;
          // per-token gradients are written every token, per-sample ones once per sample
          if (gsh.defined() && (gsh.tokens_per_row == 1 || last)) {
            T* o = gsh.row(i);
            for (int64_t j = 0; j < C; ++j)
              o[j] = overwrite ? static_cast<T>(ssh[j]) : o[j] + static_cast<T>(ssh[j]);
            std::fill(ssh.begin(), ssh.end(), 0.0);
          }
          if (gsc.defined() && (gsc.tokens_per_row == 1 || last)) {
            T* o = gsc.row(i);
            for (int64_t j = 0; j < C; ++j)
              o[j] = overwrite ? static_cast<T>(ssc[j]) : o[j] + static_cast<T>(ssc[j]);
            std::fill(ssc.begin(), ssc.end(), 0.0);
          }
        }
      }
    });
    if (T* gw = ptr<T>(dw)) {
      for (int64_t j = 0; j < C; ++j) {
        double s = 0;
        for (int64_t bi = 0; bi < B; ++bi) s += dw_part[bi * C + j];
        gw[j] += static_cast<T>(s);
      }
    }
  });
}

}  // namespace rae::ops::cpu
