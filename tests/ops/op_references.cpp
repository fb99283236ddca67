// Naive F64 references for the forward of each op case: plain loops written from the formulas
// (and the RAE release's definitions), independent of the kernels' blocking, strides and BLAS.
#include <cmath>
#include <map>

#include "ops/op_harness.h"

namespace rae::test::ops {

namespace {

using Ins = std::vector<Tensor>;
using Ref = std::function<std::vector<Tensor>(const Ins&)>;

// Contiguous F64 copy of a CPU tensor and its data.
Tensor f64(const Tensor& t) {
  return t.dtype() == DType::F64 ? t.clone() : t.cast(DType::F64);
}
struct View {
  Tensor t;
  const double* p;
  explicit View(const Tensor& x) : t(f64(x)), p(t.data<double>()) {}
  double operator[](int64_t i) const { return p[i]; }
};
Tensor out_like(const Shape& s) {
  return Tensor::zeros(s, DType::F64);
}
double* w(const Tensor& t) {
  return t.data<double>();
}

// Columns [start, start + len) of the last dim of x (..., W) as a contiguous tensor.
Tensor cols(const Tensor& x, int64_t start, int64_t len) {
  return x.narrow(-1, start, len).clone();
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

Tensor matmul_ref(const Tensor& A, const Tensor& Bm, bool ta, bool tb) {
  View a(A), b(Bm);
  int64_t M = ta ? A.dim(1) : A.dim(0), K = ta ? A.dim(0) : A.dim(1);
  int64_t N = tb ? Bm.dim(0) : Bm.dim(1);
  Tensor c = out_like({M, N});
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
      w(c)[i * N + j] = s;
    }
  return c;
}

// y = f(x) elementwise.
template <typename F>
Ref unary(F f) {
  return [f](const Ins& in) {
    View x(in[0]);
    Tensor o = out_like(in[0].shape());
    for (int64_t i = 0; i < o.numel(); ++i) w(o)[i] = f(x[i]);
    return std::vector<Tensor>{o};
  };
}

// Rows of x (N, C) normalised: layernorm (center) or RMSNorm, then * w (+ b).
Tensor norm_ref(const Tensor& xt, const Tensor& wt, const Tensor& bt, bool center) {
  View x(xt);
  const int64_t C = xt.dim(-1), N = xt.numel() / C;
  Tensor o = out_like(xt.shape());
  for (int64_t r = 0; r < N; ++r) {
    double m = 0, v = 0;
    if (center) {
      for (int64_t j = 0; j < C; ++j) m += x[r * C + j];
      m /= C;
    }
    for (int64_t j = 0; j < C; ++j) v += (x[r * C + j] - m) * (x[r * C + j] - m);
    const double rs = 1.0 / std::sqrt(v / C + 1e-6);
    for (int64_t j = 0; j < C; ++j) {
      double y = (x[r * C + j] - m) * rs;
      if (wt.defined()) y *= View(wt)[j];
      if (bt.defined()) y += View(bt)[j];
      w(o)[r * C + j] = y;
    }
  }
  return o;
}

// Conditioning value for token (b, t), channel j: per sample (B, C) or per token (B, T, C).
double cond_at(const View& c, const Tensor& shape_src, int64_t b, int64_t t, int64_t Tn,
               int64_t j) {
  const int64_t C = shape_src.dim(-1);
  return shape_src.ndim() == 2 ? c[b * C + j] : c[(b * Tn + t) * C + j];
}

// out = y * (1 + scale) + shift over x-shaped y (B, T, C).
Tensor modulate_ref(const Tensor& yt, const Tensor& shift, const Tensor& scale) {
  View y(yt), sc(scale);
  const int64_t Bn = yt.dim(0), Tn = yt.dim(1), C = yt.dim(2);
  Tensor o = out_like(yt.shape());
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t j = 0; j < C; ++j) {
        const int64_t i = (b * Tn + t) * C + j;
        double v = y[i] * (1 + cond_at(sc, scale, b, t, Tn, j));
        if (shift.defined()) v += cond_at(View(shift), shift, b, t, Tn, j);
        w(o)[i] = v;
      }
  return o;
}

std::map<std::string, Ref> references() {
  std::map<std::string, Ref> r;
  // linear
  for (auto [name, ta, tb] : {std::tuple{"matmul_nn", false, false},
                              {"matmul_tn", true, false},
                              {"matmul_nt", false, true},
                              {"matmul_tt", true, true}})
    r[name] = [ta, tb](const Ins& in) {
      return std::vector<Tensor>{matmul_ref(in[0], in[1], ta, tb)};
    };
  r["matmul_batched_alpha_beta"] = [](const Ins& in) {
    Tensor o = f64(in[2]);
    for (int64_t b = 0; b < 2; ++b) {
      Tensor p = matmul_ref(in[0][b].clone(), in[1][b].clone(), false, false);
      for (int64_t i = 0; i < p.numel(); ++i)
        w(o)[b * p.numel() + i] = 0.5 * w(p)[i] + 2 * w(o)[b * p.numel() + i];
    }
    return std::vector<Tensor>{o};
  };
  auto linear = [](const Tensor& x, const Tensor& wt, const Tensor& bt) {
    const int64_t I = wt.dim(1), O = wt.dim(0);
    Tensor m = matmul_ref(x.view({-1, I}), wt, false, true);
    if (bt.defined())
      for (int64_t n = 0; n < m.dim(0); ++n)
        for (int64_t o = 0; o < O; ++o) w(m)[n * O + o] += View(bt)[o];
    Shape s = x.shape();
    s[-1] = O;
    return m.view(s);
  };
  r["linear"] = [linear](const Ins& in) {
    return std::vector<Tensor>{linear(in[0], in[1], in[2])};
  };
  r["linear_nobias"] = [linear](const Ins& in) {
    return std::vector<Tensor>{linear(in[0], in[1], Tensor())};
  };
  r["linear_strided_x"] = [linear](const Ins& in) {
    return std::vector<Tensor>{linear(cols(in[0], 3, 8), in[1], in[2])};
  };
  // norm
  r["layernorm"] = [](const Ins& in) {
    return std::vector<Tensor>{norm_ref(in[0], in[1], in[2], true)};
  };
  r["layernorm_noaffine"] = [](const Ins& in) {
    return std::vector<Tensor>{norm_ref(in[0], {}, {}, true)};
  };
  r["rmsnorm"] = [](const Ins& in) {
    return std::vector<Tensor>{norm_ref(in[0], in[1], {}, false)};
  };
  r["rmsnorm_noweight"] = [](const Ins& in) {
    return std::vector<Tensor>{norm_ref(in[0], {}, {}, false)};
  };
  r["rmsnorm_modulate_sample"] = r["rmsnorm_modulate_token"] = [](const Ins& in) {
    return std::vector<Tensor>{modulate_ref(norm_ref(in[0], in[1], {}, false), in[2], in[3])};
  };
  r["rmsnorm_modulate_noshift_noweight"] = [](const Ins& in) {
    return std::vector<Tensor>{modulate_ref(norm_ref(in[0], {}, {}, false), {}, in[3])};
  };
  r["rmsnorm_modulate_chunked_sample"] = [](const Ins& in) {
    return std::vector<Tensor>{
        modulate_ref(norm_ref(in[0], in[1], {}, false), cols(in[2], 0, 8), cols(in[2], 8, 8))};
  };
  r["rmsnorm_modulate_chunked_token"] = [](const Ins& in) {
    return std::vector<Tensor>{
        modulate_ref(norm_ref(in[0], {}, {}, false), cols(in[2], 0, 8), cols(in[2], 8, 8))};
  };
  r["rmsnorm_modulate_chunked2_sample"] = r["rmsnorm_modulate_chunked2_token"] =
      r["rmsnorm_modulate_chunked_sample"];
  // activation
  r["gelu_exact"] = unary([](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); });
  r["gelu_tanh"] = unary([](double x) {
    return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  });
  r["silu"] = unary([](double x) { return x * sigmoid(x); });
  r["swiglu"] = [](const Ins& in) {
    Tensor x1 = f64(cols(in[0], 0, 8)), x2 = f64(cols(in[0], 8, 8));
    Tensor o = out_like(x1.shape());
    for (int64_t i = 0; i < o.numel(); ++i) w(o)[i] = w(x1)[i] * sigmoid(w(x1)[i]) * w(x2)[i];
    return std::vector<Tensor>{o};
  };
  // attention
  r["softmax"] = [](const Ins& in) {
    View x(in[0]);
    const int64_t C = in[0].dim(-1), N = in[0].numel() / C;
    Tensor o = out_like(in[0].shape());
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t j = 0; j < C; ++j) s += std::exp(x[n * C + j]);
      for (int64_t j = 0; j < C; ++j) w(o)[n * C + j] = std::exp(x[n * C + j]) / s;
    }
    return std::vector<Tensor>{o};
  };
  r["attention"] = [](const Ins& in) {
    View q(in[0]);
    const int64_t Bn = in[0].dim(0), Tn = in[0].dim(1), Hn = in[0].dim(3), Dn = in[0].dim(4);
    auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t d) {
      return q[(((b * Tn + t) * 3 + part) * Hn + h) * Dn + d];
    };
    Tensor o = out_like({Bn, Tn, Hn, Dn});
    for (int64_t b = 0; b < Bn; ++b)
      for (int64_t h = 0; h < Hn; ++h)
        for (int64_t i = 0; i < Tn; ++i) {
          std::vector<double> p(Tn);
          double z = 0;
          for (int64_t j = 0; j < Tn; ++j) {
            double s = 0;
            for (int64_t d = 0; d < Dn; ++d) s += at(b, i, 0, h, d) * at(b, j, 1, h, d);
            p[j] = std::exp(s / std::sqrt(static_cast<double>(Dn)));
            z += p[j];
          }
          for (int64_t d = 0; d < Dn; ++d) {
            double acc = 0;
            for (int64_t j = 0; j < Tn; ++j) acc += p[j] / z * at(b, j, 2, h, d);
            w(o)[((b * Tn + i) * Hn + h) * Dn + d] = acc;
          }
        }
    return std::vector<Tensor>{o};
  };
  r["rope_apply"] = [](const Ins& in) {
    // EVA rotate_half: pairs (x0, x1) -> (-x1, x0); t * cos + rotate_half(t) * sin on q and k.
    View x(in[0]), c(in[1]), s(in[2]);
    const int64_t Bn = in[0].dim(0), Tn = in[0].dim(1), Hn = in[0].dim(3), Dn = in[0].dim(4);
    Tensor o = f64(in[0]);
    for (int64_t b = 0; b < Bn; ++b)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t part = 0; part < 2; ++part)
          for (int64_t h = 0; h < Hn; ++h)
            for (int64_t d = 0; d < Dn; ++d) {
              const int64_t i = (((b * Tn + t) * 3 + part) * Hn + h) * Dn + d;
              const double rot = d % 2 == 0 ? -x[i + 1] : x[i - 1];
              w(o)[i] = x[i] * c[t * Dn + d] + rot * s[t * Dn + d];
            }
    return std::vector<Tensor>{o};
  };
  // modulate
  r["modulate_sample"] = r["modulate_token"] = [](const Ins& in) {
    return std::vector<Tensor>{modulate_ref(in[0], in[1], in[2])};
  };
  r["modulate_noshift"] = [](const Ins& in) {
    return std::vector<Tensor>{modulate_ref(in[0], {}, in[2])};
  };
  r["modulate_chunked_token"] = [](const Ins& in) {
    return std::vector<Tensor>{modulate_ref(in[0], cols(in[1], 8, 8), cols(in[1], 0, 8))};
  };
  r["gate_residual_sample"] = r["gate_residual_token"] = [](const Ins& in) {
    // x + gate * y = modulate(y, shift = x, scale = gate - 1)
    View y(in[1]), g(in[2]), x(in[0]);
    const int64_t Bn = in[0].dim(0), Tn = in[0].dim(1), C = in[0].dim(2);
    Tensor o = out_like(in[0].shape());
    for (int64_t b = 0; b < Bn; ++b)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t j = 0; j < C; ++j) {
          const int64_t i = (b * Tn + t) * C + j;
          w(o)[i] = x[i] + cond_at(g, in[2], b, t, Tn, j) * y[i];
        }
    return std::vector<Tensor>{o};
  };
  // embed
  r["fourier_features"] = [](const Ins& in) {
    View t(in[0]), W(in[1]);
    const int64_t Bn = in[0].dim(0), F = in[1].dim(0);
    Tensor o = out_like({Bn, 2 * F});
    for (int64_t b = 0; b < Bn; ++b)
      for (int64_t k = 0; k < F; ++k) {
        w(o)[b * 2 * F + k] = std::sin(2 * M_PI * t[b] * W[k]);
        w(o)[b * 2 * F + F + k] = std::cos(2 * M_PI * t[b] * W[k]);
      }
    return std::vector<Tensor>{o};
  };
  r["embedding"] = [](const Ins& in) {
    View tab(in[0]);
    const int64_t C = in[0].dim(1), Bn = in[1].dim(0);
    Tensor o = out_like({Bn, C});
    for (int64_t b = 0; b < Bn; ++b)
      for (int64_t j = 0; j < C; ++j) w(o)[b * C + j] = tab[in[1].data<int32_t>()[b] * C + j];
    return std::vector<Tensor>{o};
  };
  // The release's unpatchify: tokens viewed (N, h, w, p, q, c), einsum nhwpqc -> nchpwq.
  auto token_index = [](int64_t n, int64_t c, int64_t y, int64_t x, int64_t Cn, int64_t Hn,
                        int64_t Wn, int64_t p) {
    const int64_t hp = Hn / p, wp = Wn / p;
    return ((((n * hp + y / p) * wp + x / p) * p + y % p) * p + x % p) * Cn + c;
  };
  r["patchify"] = [token_index](const Ins& in) {
    View img(in[0]);
    Tensor o = out_like({2, 6, 12});
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 4; ++y)
          for (int64_t x = 0; x < 6; ++x)
            w(o)[token_index(n, c, y, x, 3, 4, 6, 2)] = img[((n * 3 + c) * 4 + y) * 6 + x];
    return std::vector<Tensor>{o};
  };
  r["unpatchify"] = [token_index](const Ins& in) {
    View tok(in[0]);
    Tensor o = out_like({2, 3, 4, 6});
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 4; ++y)
          for (int64_t x = 0; x < 6; ++x)
            w(o)[((n * 3 + c) * 4 + y) * 6 + x] = tok[token_index(n, c, y, x, 3, 4, 6, 2)];
    return std::vector<Tensor>{o};
  };
  // elementwise
  auto binary = [](const Ins& in, double a, double b) {
    View x(in[0]), y(in[1]);
    Tensor o = out_like(in[0].shape());
    for (int64_t i = 0; i < o.numel(); ++i) w(o)[i] = a * x[i] + b * y[i];
    return std::vector<Tensor>{o};
  };
  r["add_inplace"] = [binary](const Ins& in) { return binary(in, 1.0, 0.7); };
  r["add"] = [binary](const Ins& in) { return binary(in, 1.0, 1.0); };
  r["scale_inplace"] = unary([](double x) { return -1.3 * x; });
  r["add_rowwise"] = [](const Ins& in) {
    View x(in[0]), row(in[1]);
    Tensor o = out_like(in[0].shape());
    for (int64_t i = 0; i < o.numel(); ++i) w(o)[i] = x[i] + row[i % 8];
    return std::vector<Tensor>{o};
  };
  r["add_rowwise_table"] = [](const Ins& in) {
    View x(in[0]), tab(in[1]);
    Tensor o = out_like(in[0].shape());
    const int64_t TC = in[1].numel();
    for (int64_t i = 0; i < o.numel(); ++i) w(o)[i] = x[i] + tab[i % TC];
    return std::vector<Tensor>{o};
  };
  r["sum_squares"] = [](const Ins& in) {
    View x(in[0]);
    double s = 0;
    for (int64_t i = 0; i < in[0].numel(); ++i) s += x[i] * x[i];
    return std::vector<Tensor>{Tensor::full({1}, s, DType::F64)};
  };
  r["all_finite"] = [](const Ins&) {
    return std::vector<Tensor>{Tensor::full({1}, 1.0, DType::F64)};
  };
  r["mse"] = [](const Ins& in) {
    View p(in[0]), q(in[1]);
    double s = 0;
    for (int64_t i = 0; i < in[0].numel(); ++i) s += (p[i] - q[i]) * (p[i] - q[i]);
    return std::vector<Tensor>{Tensor::full({1}, s / in[0].numel(), DType::F64)};
  };
  r["flow_interpolate"] = [](const Ins& in) {
    View x(in[0]), e(in[1]), t(in[2]);
    Tensor xt = out_like(in[0].shape()), tg = out_like(in[0].shape());
    const int64_t per = in[0].numel() / in[0].dim(0);
    for (int64_t i = 0; i < in[0].numel(); ++i) {
      const double tb = t[i / per];
      w(xt)[i] = (1 - tb) * x[i] + tb * e[i];
      w(tg)[i] = e[i] - x[i];
    }
    return std::vector<Tensor>{xt, tg};
  };
  // optim: PyTorch AdamW with lr 1e-2, betas (0.9, 0.95), eps 1e-8, wd 0.1, step 3, grads * 0.5.
  r["adamw_step"] = [](const Ins& in) {
    Tensor p = f64(in[0]), m = f64(in[2]), v = f64(in[3]);
    View g(in[1]);
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    const double bc1 = 1 - std::pow(b1, 3), bc2 = 1 - std::pow(b2, 3);
    for (int64_t i = 0; i < p.numel(); ++i) {
      const double gi = 0.5 * g[i];
      w(p)[i] *= 1 - lr * wd;
      w(m)[i] = b1 * w(m)[i] + (1 - b1) * gi;
      w(v)[i] = b2 * w(v)[i] + (1 - b2) * gi * gi;
      w(p)[i] -= lr / bc1 * w(m)[i] / (std::sqrt(w(v)[i]) / std::sqrt(bc2) + eps);
    }
    return std::vector<Tensor>{p, m, v};
  };
  r["ema_update"] = [binary](const Ins& in) { return binary(in, 0.9, 0.1); };
  return r;
}

}  // namespace

void attach_references(std::vector<OpCase>& cases) {
  std::map<std::string, Ref> refs = references();
  for (OpCase& c : cases) {
    auto it = refs.find(c.name);
    if (it != refs.end()) c.reference = it->second;
  }
}

}  // namespace rae::test::ops
