// CPU softmax, fused non-causal attention and 2D RoPE. Attention runs one task per (batch, head):
// S = scale * Q K^T and O = P V through BLAS, a max-subtracted softmax, and the row log-sum-exp
// saved for the backward pass, which recomputes P from it (flash-attention style). The per-task
// GEMMs are small enough to run as single calls (gemm_rm): the parallelism is over (b, h).
#include "ops/attention.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// Row softmax pieces: float through the vector kernels of cpu/vec_math.cpp (polynomial exp),
// double through libm. exp_row writes y = exp(x - shift) and returns its sum in double.
inline float max_row(const float* x, int64_t n) {
  return row_max(x, n);
}
inline double max_row(const double* x, int64_t n) {
  double m = x[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  return m;
}
inline double exp_row(const float* x, float* y, int64_t n, float shift) {
  return exp_shift_sum(x, y, n, shift);
}
inline double exp_row(const double* x, double* y, int64_t n, double shift) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    y[j] = std::exp(x[j] - shift);
    s += y[j];
  }
  return s;
}
inline void scale_row(float* y, int64_t n, float a) {
  scale_inplace(y, n, a);
}
inline void scale_row(double* y, int64_t n, double a) {
  for (int64_t j = 0; j < n; ++j) y[j] *= a;
}

}  // namespace

void softmax_forward(const Tensor& out, const Tensor& x) {
  float_dispatch(x.dtype(), "softmax_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    const int64_t C = xr.c;
    if (C == 0) return;
    parallel_blocks(xr.n, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* a = xr.row(i);
        T* y = o.row(i);
        const T m = max_row(a, C);
        const double s = exp_row(a, y, C, m);
        scale_row(y, C, static_cast<T>(1.0 / s));
      }
    });
  });
}

void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& out) {
  float_dispatch(out.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> y = rows_of<T>(out), d = rows_of<T>(dout), g = rows_of<T>(dx);
    const int64_t C = y.c;
    parallel_blocks(y.n, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T *p = y.row(i), *dy = d.row(i);
        double dot = 0;
        for (int64_t j = 0; j < C; ++j) dot += static_cast<double>(dy[j]) * p[j];
        T* gx = g.row(i);
        for (int64_t j = 0; j < C; ++j) gx[j] += static_cast<T>(p[j] * (dy[j] - dot));
      }
    });
  });
}

namespace {

// Pointers to the (b, h) slices of packed qkv (B, T, 3, H, D); rows are 3*H*D apart.
template <typename T>
struct HeadView {
  T *q, *k, *v;
  int64_t ld;
};
template <typename T>
HeadView<T> head_view(T* qkv, int64_t b, int64_t h, int64_t Tn, int64_t H, int64_t D) {
  T* base = qkv + b * Tn * 3 * H * D + h * D;
  return {base, base + H * D, base + 2 * H * D, 3 * H * D};
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, double scale) {
  float_dispatch(qkv.dtype(), "attention_forward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t B = qkv.dim(0), Tn = qkv.dim(1), H = qkv.dim(3), D = qkv.dim(4);
    T *qp = ptr<T>(qkv), *op = ptr<T>(out), *lp = ptr<T>(lse);
    parallel_blocks(B * H, 1, [&](int64_t j0, int64_t j1) {
      std::vector<T> S(static_cast<size_t>(Tn * Tn)), inv_sum(static_cast<size_t>(Tn));
      for (int64_t bh = j0; bh < j1; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        HeadView<T> hv = head_view(qp, b, h, Tn, H, D);
        gemm_rm<T>(false, true, Tn, Tn, D, scale, hv.q, hv.ld, hv.k, hv.ld, 0.0, S.data(), Tn);
        for (int64_t i = 0; i < Tn; ++i) {
          T* s = S.data() + i * Tn;
          const T m = max_row(s, Tn);
          const double sum = exp_row(s, s, Tn, m);  // S row = exp(s - m), unnormalised
          inv_sum[i] = static_cast<T>(1.0 / sum);
          lp[(b * H + h) * Tn + i] = static_cast<T>(m + std::log(sum));
        }
        // O = exp(S - m) V, then each row divided by its sum: D columns to scale instead of Tn.
        // out rows (b, t, h, :) are H*D apart
        T* o = op + b * Tn * H * D + h * D;
        gemm_rm<T>(false, false, Tn, D, Tn, 1.0, S.data(), Tn, hv.v, hv.ld, 0.0, o, H * D);
        for (int64_t i = 0; i < Tn; ++i) scale_row(o + i * H * D, D, inv_sum[i]);
      }
    });
  });
}

void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                        const Tensor& out, const Tensor& lse, double scale, GradMode mode) {
  const double beta = mode == GradMode::Overwrite ? 0.0 : 1.0;  // 0: dqkv is written, not read
  float_dispatch(qkv.dtype(), "attention_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t B = qkv.dim(0), Tn = qkv.dim(1), H = qkv.dim(3), D = qkv.dim(4);
    T *qp = ptr<T>(qkv), *gp = ptr<T>(dqkv), *op = ptr<T>(out), *dop = ptr<T>(dout),
      *lp = ptr<T>(lse);
    parallel_blocks(B * H, 1, [&](int64_t j0, int64_t j1) {
      std::vector<T> P(static_cast<size_t>(Tn * Tn)), dS(static_cast<size_t>(Tn * Tn));
      for (int64_t bh = j0; bh < j1; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        HeadView<T> hv = head_view(qp, b, h, Tn, H, D), gv = head_view(gp, b, h, Tn, H, D);
        const T* o = op + b * Tn * H * D + h * D;
        const T* dO = dop + b * Tn * H * D + h * D;
        const int64_t ldo = H * D;
        // P = exp(scale * Q K^T - lse), recomputed
        gemm_rm<T>(false, true, Tn, Tn, D, scale, hv.q, hv.ld, hv.k, hv.ld, 0.0, P.data(), Tn);
        for (int64_t i = 0; i < Tn; ++i) {
          const T l = lp[(b * H + h) * Tn + i];
          T* p = P.data() + i * Tn;
          exp_row(p, p, Tn, l);
        }
        // dP = dO V^T (into dS), then dS = P * (dP - rowsum(dO * O))
        gemm_rm<T>(false, true, Tn, Tn, D, 1.0, dO, ldo, hv.v, hv.ld, 0.0, dS.data(), Tn);
        for (int64_t i = 0; i < Tn; ++i) {
          double delta = 0;
          for (int64_t d = 0; d < D; ++d)
            delta += static_cast<double>(dO[i * ldo + d]) * o[i * ldo + d];
          const T* p = P.data() + i * Tn;
          T* ds = dS.data() + i * Tn;
          for (int64_t j = 0; j < Tn; ++j) ds[j] = p[j] * (ds[j] - static_cast<T>(delta));
        }
        // dV += P^T dO; dQ += scale dS K; dK += scale dS^T Q
        gemm_rm<T>(true, false, Tn, D, Tn, 1.0, P.data(), Tn, dO, ldo, beta, gv.v, gv.ld);
        gemm_rm<T>(false, false, Tn, D, Tn, scale, dS.data(), Tn, hv.k, hv.ld, beta, gv.q, gv.ld);
        gemm_rm<T>(true, false, Tn, D, Tn, scale, dS.data(), Tn, hv.q, hv.ld, beta, gv.k, gv.ld);
      }
    });
  });
}

void rope2d_tables(const Tensor& cos, const Tensor& sin, int64_t grid_h, int64_t grid_w,
                   int64_t head_dim, double theta) {
  // VisionRotaryEmbeddingFast(dim = head_dim / 2, pt_seq_len = grid) of the release, with its
  // float32 arithmetic: freqs = 1 / theta^(arange(0, dim, 2) / dim); positions
  // t = arange(n) / n * n; each freq repeated twice (interleaved); row (i, j) of the grid is
  // [freqs(t_i) | freqs(t_j)] (h then w), flattened to i * grid_w + j.
  const int64_t dim = head_dim / 2, nf = dim / 2;
  std::vector<float> freq(nf);
  for (int64_t k = 0; k < nf; ++k) {
    float e = static_cast<float>(2 * k) / static_cast<float>(dim);
    float pw = static_cast<float>(
        std::pow(static_cast<double>(static_cast<float>(theta)), static_cast<double>(e)));
    freq[k] = 1.0f / pw;
  }
  auto pos = [](int64_t i, int64_t n) {
    float t = static_cast<float>(i) / static_cast<float>(n);
    return t * static_cast<float>(n);
  };
  float_dispatch(cos.dtype(), "rope2d_tables", [&](auto tag) {
    using T = decltype(tag);
    T *cp = ptr<T>(cos), *sp = ptr<T>(sin);
    for (int64_t i = 0; i < grid_h; ++i) {
      for (int64_t j = 0; j < grid_w; ++j) {
        T* c = cp + (i * grid_w + j) * head_dim;
        T* s = sp + (i * grid_w + j) * head_dim;
        const float ti = pos(i, grid_h), tj = pos(j, grid_w);
        for (int64_t col = 0; col < head_dim; ++col) {
          const bool w_half = col >= dim;
          const int64_t k = (w_half ? col - dim : col) / 2;
          const float angle = (w_half ? tj : ti) * freq[k];
          c[col] = static_cast<T>(static_cast<float>(std::cos(static_cast<double>(angle))));
          s[col] = static_cast<T>(static_cast<float>(std::sin(static_cast<double>(angle))));
        }
      }
    }
  });
}

namespace {

// Rotates adjacent pairs of the q and k parts of qkv (B, T, 3, H, D) in place:
// forward (x0, x1) -> (x0 c0 - x1 s0, x1 c1 + x0 s1); the transpose (backward) is
// (g0, g1) -> (g0 c0 + g1 s1, g1 c1 - g0 s0).
template <typename T, typename TT>
void rope_rotate(const Tensor& qkv, const Tensor& cos, const Tensor& sin, bool transpose) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), H = qkv.dim(3), D = qkv.dim(4);
  T* p = ptr<T>(qkv);
  const TT *cp = ptr<TT>(cos), *sp = ptr<TT>(sin);
  parallel_blocks(B * Tn, row_grain(2 * H * D), [&](int64_t r0, int64_t r1) {
    for (int64_t bt = r0; bt < r1; ++bt) {
      const int64_t t = bt % Tn;
      const TT *c = cp + t * D, *s = sp + t * D;
      for (int64_t part = 0; part < 2; ++part) {
        for (int64_t h = 0; h < H; ++h) {
          T* x = p + ((bt * 3 + part) * H + h) * D;
          for (int64_t d = 0; d < D; d += 2) {
            const T x0 = x[d], x1 = x[d + 1];
            const T c0 = static_cast<T>(c[d]), c1 = static_cast<T>(c[d + 1]);
            const T s0 = static_cast<T>(s[d]), s1 = static_cast<T>(s[d + 1]);
            if (!transpose) {
              x[d] = x0 * c0 - x1 * s0;
              x[d + 1] = x1 * c1 + x0 * s1;
            } else {
              x[d] = x0 * c0 + x1 * s1;
              x[d + 1] = x1 * c1 - x0 * s0;
            }
          }
        }
      }
    }
  });
}

void rope_dispatch(const Tensor& qkv, const Tensor& cos, const Tensor& sin, bool transpose,
                   const char* op) {
  float_dispatch(qkv.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    float_dispatch(cos.dtype(), op, [&](auto ttag) {
      using TT = decltype(ttag);
      rope_rotate<T, TT>(qkv, cos, sin, transpose);
    });
  });
}

}  // namespace

void rope_apply(const Tensor& qkv, const Tensor& cos, const Tensor& sin) {
  rope_dispatch(qkv, cos, sin, false, "rope_apply");
}

void rope_apply_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin) {
  rope_dispatch(dqkv, cos, sin, true, "rope_apply_backward");
}

}  // namespace rae::ops::cpu
