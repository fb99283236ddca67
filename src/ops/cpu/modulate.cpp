// CPU adaLN modulation and gated residuals, per-sample (B, C) or per-token (B, T, C)
// conditioning. Work is split by sample so per-sample reductions need no atomics and stay
// deterministic.
#include "ops/modulate.h"

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// Adds acc into the conditioning-gradient row of token row i when the row is complete:
// every token for per-token conditioning, at the sample's last token for per-sample.
template <typename T>
void flush(const CondRows<T>& g, int64_t i, bool last_token, std::vector<double>& acc,
           bool overwrite = false) {
  if (!g.defined()) return;
  if (g.tokens_per_row != 1 && !last_token) return;
  T* o = g.row(i);
  for (size_t j = 0; j < acc.size(); ++j)
    o[j] = overwrite ? static_cast<T>(acc[j]) : o[j] + static_cast<T>(acc[j]);
  std::fill(acc.begin(), acc.end(), 0.0);
}

template <typename Fn>
void each_sample(int64_t B, int64_t Tn, int64_t C, Fn&& fn) {
  parallel_blocks(B, std::max<int64_t>(1, row_grain(Tn * C)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) fn(b);
  });
}

}  // namespace

void modulate_forward(const Tensor& out, const Tensor& x, const Tensor& shift,
                      const Tensor& scale) {
  float_dispatch(x.dtype(), "modulate_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    const int64_t Tn = x.dim(1), C = xr.c;
    CondRows<T> sh = cond_rows_of<T>(shift, Tn), sc = cond_rows_of<T>(scale, Tn);
    parallel_blocks(xr.n, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T *a = xr.row(i), *s = sc.row(i), *b = sh.defined() ? sh.row(i) : nullptr;
        T* y = o.row(i);
        for (int64_t j = 0; j < C; ++j) y[j] = a[j] * (T(1) + s[j]) + (b ? b[j] : T(0));
      }
    });
  });
}

void modulate_backward(const Tensor& dx, const Tensor& dshift, const Tensor& dscale,
                       const Tensor& dout, const Tensor& x, const Tensor& scale) {
  float_dispatch(x.dtype(), "modulate_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout), g = rows_of<T>(dx);
    const int64_t B = x.dim(0), Tn = x.dim(1), C = xr.c;
    CondRows<T> sc = cond_rows_of<T>(scale, Tn), gsh = cond_rows_of<T>(dshift, Tn),
                gsc = cond_rows_of<T>(dscale, Tn);
    each_sample(B, Tn, C, [&](int64_t b) {
      std::vector<double> ssh(C, 0.0), ssc(C, 0.0);
      for (int64_t t = 0; t < Tn; ++t) {
        const int64_t i = b * Tn + t;
        const T *a = xr.row(i), *dy = d.row(i), *s = sc.row(i);
        if (g.p) {
          T* gx = g.row(i);
          for (int64_t j = 0; j < C; ++j) gx[j] += dy[j] * (T(1) + s[j]);
        }
        for (int64_t j = 0; j < C; ++j) {
          ssh[j] += dy[j];
          ssc[j] += static_cast<double>(dy[j]) * a[j];
        }
        flush(gsh, i, t == Tn - 1, ssh);
        flush(gsc, i, t == Tn - 1, ssc);
      }
    });
  });
}

void gate_residual_forward(const Tensor& x, const Tensor& y, const Tensor& gate) {
  float_dispatch(x.dtype(), "gate_residual_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), yr = rows_of<T>(y);
    CondRows<T> gt = cond_rows_of<T>(gate, x.dim(1));
    const int64_t C = xr.c;
    parallel_blocks(xr.n, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        T* a = xr.row(i);
        const T *v = yr.row(i), *s = gt.row(i);
        for (int64_t j = 0; j < C; ++j) a[j] += s[j] * v[j];
      }
    });
  });
}

void gate_residual_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres,
                            const Tensor& y, const Tensor& gate, GradMode mode) {
  const bool overwrite = mode == GradMode::Overwrite;
  float_dispatch(y.dtype(), "gate_residual_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> yr = rows_of<T>(y), d = rows_of<T>(dres), g = rows_of<T>(dy);
    const int64_t B = y.dim(0), Tn = y.dim(1), C = yr.c;
    CondRows<T> gt = cond_rows_of<T>(gate, Tn), gg = cond_rows_of<T>(dgate, Tn);
    each_sample(B, Tn, C, [&](int64_t b) {
      std::vector<double> sg(C, 0.0);
      for (int64_t t = 0; t < Tn; ++t) {
        const int64_t i = b * Tn + t;
        const T *v = yr.row(i), *dr = d.row(i), *s = gt.row(i);
        if (g.p) {
          T* gv = g.row(i);
          if (overwrite)
            for (int64_t j = 0; j < C; ++j) gv[j] = s[j] * dr[j];
          else
            for (int64_t j = 0; j < C; ++j) gv[j] += s[j] * dr[j];
        }
        if (gg.defined()) {
          for (int64_t j = 0; j < C; ++j) sg[j] += static_cast<double>(dr[j]) * v[j];
          flush(gg, i, t == Tn - 1, sg, overwrite);
        }
      }
    });
  });
}

}  // namespace rae::ops::cpu
