// CPU batch normalisation over rows of channels (channels last). Per-channel sums go through
// column_reduce (fixed row chunks summed in order, in double): bit-identical across runs and
// thread counts. Groups (the discriminator's per-sample normalisation) run one after another.
// The training statistics take two passes (mean, then the centred squares), as
// PyTorch's CPU kernel does, which keeps the variance accurate when |mean| >> std.
#include "ops/batchnorm.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// Per-channel scale/shift of y = x * a + c, in double.
struct Affine {
  std::vector<double> a, c;
};

// out = x * a[j] + c[j] over rows.
template <typename T>
void apply_affine(const Rows<T>& o, const Rows<T>& xr, const Affine& f) {
  parallel_blocks(xr.n, row_grain(xr.c), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const T* x = xr.row(i);
      T* y = o.row(i);
      for (int64_t j = 0; j < xr.c; ++j) y[j] = static_cast<T>(x[j] * f.a[j] + f.c[j]);
    }
  });
}

// Rows [grp * M, (grp + 1) * M) of a row view.
template <typename T>
Rows<T> group_rows(const Rows<T>& r, int64_t grp, int64_t M) {
  Rows<T> g = r;
  g.p = r.p + grp * M * r.ld;
  g.n = M;
  return g;
}

template <typename T>
double at(const T* p, int64_t j, double fallback) {
  return p ? static_cast<double>(p[j]) : fallback;
}

// Sums over rows of dout and of dout * xhat, with xhat = (x - mu[j]) * rs[j].
template <typename T>
std::vector<double> grad_sums(const Rows<T>& d, const Rows<T>& xr, const std::vector<double>& mu,
                              const std::vector<double>& rs) {
  const int64_t C = xr.c;
  return column_reduce(xr.n, 2 * C, [&](int64_t i, double* acc) {
    const T *x = xr.row(i), *dy = d.row(i);
    for (int64_t j = 0; j < C; ++j) {
      acc[j] += dy[j];
      acc[C + j] += dy[j] * ((x[j] - mu[j]) * rs[j]);
    }
  });
}

template <typename T>
void add_param_grads(const Tensor& dgamma, const Tensor& dbeta, const std::vector<double>& s,
                     int64_t C) {
  if (T* g = ptr<T>(dgamma))
    for (int64_t j = 0; j < C; ++j) g[j] += static_cast<T>(s[C + j]);
  if (T* g = ptr<T>(dbeta))
    for (int64_t j = 0; j < C; ++j) g[j] += static_cast<T>(s[j]);
}

}  // namespace

void batchnorm_train_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var, double momentum,
                             double eps, int64_t groups) {
  float_dispatch(x.dtype(), "batchnorm_train_forward", [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> x_all = rows_of<T>(x), o_all = rows_of<T>(out);
    const int64_t M = x_all.n / groups, C = x_all.c;
    const T *g = ptr<T>(gamma), *b = ptr<T>(beta);
    T *rm = ptr<T>(running_mean), *rv = ptr<T>(running_var);
    for (int64_t grp = 0; grp < groups; ++grp) {
      const Rows<T> xr = group_rows(x_all, grp, M), o = group_rows(o_all, grp, M);
      std::vector<double> mu = column_reduce(M, C, [&](int64_t i, double* acc) {
        const T* r = xr.row(i);
        for (int64_t j = 0; j < C; ++j) acc[j] += r[j];
      });
      for (double& m : mu) m /= static_cast<double>(M);
      std::vector<double> var = column_reduce(M, C, [&](int64_t i, double* acc) {
        const T* r = xr.row(i);
        for (int64_t j = 0; j < C; ++j) acc[j] += (r[j] - mu[j]) * (r[j] - mu[j]);
      });
      T *m_out = ptr<T>(mean) + grp * C, *rs_out = ptr<T>(rstd) + grp * C;
      Affine f{std::vector<double>(C), std::vector<double>(C)};
      for (int64_t j = 0; j < C; ++j) {
        const double v = var[j] / static_cast<double>(M);
        const double rs = 1.0 / std::sqrt(v + eps);
        m_out[j] = static_cast<T>(mu[j]);
        rs_out[j] = static_cast<T>(rs);
        f.a[j] = rs * at(g, j, 1.0);
        f.c[j] = at(b, j, 0.0) - mu[j] * f.a[j];
        if (rm) {
          rm[j] = static_cast<T>((1 - momentum) * rm[j] + momentum * mu[j]);
          rv[j] = static_cast<T>((1 - momentum) * rv[j] +
                                 momentum * var[j] / static_cast<double>(M - 1));
        }
      }
      apply_affine(o, xr, f);
    }
  });
}

void batchnorm_train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                              const Tensor& dout, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, int64_t groups) {
  float_dispatch(x.dtype(), "batchnorm_train_backward", [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> x_all = rows_of<T>(x), d_all = rows_of<T>(dout);
    const int64_t M = x_all.n / groups, C = x_all.c;
    const T* g = ptr<T>(gamma);
    for (int64_t grp = 0; grp < groups; ++grp) {
      const Rows<T> xr = group_rows(x_all, grp, M), d = group_rows(d_all, grp, M);
      const T *mp = ptr<T>(mean) + grp * C, *rp = ptr<T>(rstd) + grp * C;
      std::vector<double> mu(C), rs(C);
      for (int64_t j = 0; j < C; ++j) {
        mu[j] = mp[j];
        rs[j] = rp[j];
      }
      std::vector<double> s = grad_sums(d, xr, mu, rs);
      add_param_grads<T>(dgamma, dbeta, s, C);
      if (!dx.defined()) continue;
      const Rows<T> gx = group_rows(rows_of<T>(dx), grp, M);
      // dx = k (dout - mean(dout) - xhat mean(dout xhat)), k = gamma rstd
      std::vector<double> k(C), mdy(C), mdyx(C);
      for (int64_t j = 0; j < C; ++j) {
        k[j] = at(g, j, 1.0) * rs[j];
        mdy[j] = s[j] / static_cast<double>(M);
        mdyx[j] = s[C + j] / static_cast<double>(M);
      }
      parallel_blocks(M, row_grain(C), [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
          const T *xv = xr.row(i), *dy = d.row(i);
          T* out = gx.row(i);
          for (int64_t j = 0; j < C; ++j) {
            const double xhat = (xv[j] - mu[j]) * rs[j];
            out[j] += static_cast<T>(k[j] * (dy[j] - mdy[j] - xhat * mdyx[j]));
          }
        }
      });
    }
  });
}

void batchnorm_eval_forward(const Tensor& out, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  float_dispatch(x.dtype(), "batchnorm_eval_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    const int64_t C = xr.c;
    const T *g = ptr<T>(gamma), *b = ptr<T>(beta);
    const T *rm = ptr<T>(running_mean), *rv = ptr<T>(running_var);
    Affine f{std::vector<double>(C), std::vector<double>(C)};
    for (int64_t j = 0; j < C; ++j) {
      f.a[j] = at(g, j, 1.0) / std::sqrt(static_cast<double>(rv[j]) + eps);
      f.c[j] = at(b, j, 0.0) - rm[j] * f.a[j];
    }
    apply_affine(o, xr, f);
  });
}

void batchnorm_eval_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                             const Tensor& dout, const Tensor& x, const Tensor& gamma,
                             const Tensor& running_mean, const Tensor& running_var, double eps) {
  float_dispatch(x.dtype(), "batchnorm_eval_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout);
    const int64_t C = xr.c;
    const T *g = ptr<T>(gamma), *rmp = ptr<T>(running_mean), *rvp = ptr<T>(running_var);
    std::vector<double> mu(C), rs(C);
    for (int64_t j = 0; j < C; ++j) {
      mu[j] = rmp[j];
      rs[j] = 1.0 / std::sqrt(static_cast<double>(rvp[j]) + eps);
    }
    if (dgamma.defined() || dbeta.defined())
      add_param_grads<T>(dgamma, dbeta, grad_sums(d, xr, mu, rs), C);
    if (!dx.defined()) return;
    Rows<T> gx = rows_of<T>(dx);
    parallel_blocks(xr.n, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* dy = d.row(i);
        T* out = gx.row(i);
        for (int64_t j = 0; j < C; ++j) out[j] += static_cast<T>(dy[j] * at(g, j, 1.0) * rs[j]);
      }
    });
  });
}

}  // namespace rae::ops::cpu
