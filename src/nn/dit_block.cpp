#include "nn/dit_block.h"

#include <cmath>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/grad_mode.h"
#include "ops/modulate.h"
#include "ops/norm.h"

namespace rae::nn {

namespace {
constexpr double kNormEps = 1e-6;  // RMSNorm eps of the release
}

int64_t swiglu_hidden(int64_t width, double mlp_ratio) {
  int64_t mlp_hidden = static_cast<int64_t>(static_cast<double>(width) * mlp_ratio);
  return static_cast<int64_t>(2.0 / 3.0 * static_cast<double>(mlp_hidden));
}

void DiTBlock::declare(ParamStore& ps, const std::string& p, int64_t w, int64_t h,
                       double mlp_ratio) {
  width = w;
  heads = h;
  RAE_CHECK(w % h == 0, p, ": width ", w, " not divisible by heads ", h);
  head_dim = w / h;
  hidden = swiglu_hidden(w, mlp_ratio);
  norm1 = ps.add(p + ".norm1.weight", {w});
  qkv.declare(ps, p + ".attn.qkv", w, 3 * w);
  proj.declare(ps, p + ".attn.proj", w, w);
  norm2 = ps.add(p + ".norm2.weight", {w});
  w12.declare(ps, p + ".mlp.w12", w, 2 * hidden);
  w3.declare(ps, p + ".mlp.w3", hidden, w);
  ada.declare(ps, p + ".adaLN_modulation.1", w, 6 * w);
}

void DiTBlock::forward(const ParamStore& ps, Arena& A, Saved& s, const Tensor& x_out,
                       const Tensor& x_in, const Tensor& cond, const Tensor& cos,
                       const Tensor& sin) const {
  const int64_t B = x_in.dim(0), T = x_in.dim(1), C = width, N = B * T;
  s.B = B, s.T = T;
  s.per_token = cond.ndim() == 3;
  const int64_t R = s.per_token ? N : B;
  auto mshape = [&](const Tensor& t) { return s.per_token ? t.view({B, T, C}) : t.view({B, C}); };
  s.x_in = x_in;
  s.cond = cond;
  // adaLN: (shift, scale, gate) x (msa, mlp) from SiLU -> Linear of the condition.
  s.cond_act = A.empty({R, C});
  ops::silu_forward(s.cond_act, cond.view({R, C}));
  Tensor shift_msa = A.empty({R, C}), shift_mlp = A.empty({R, C});
  s.scale_msa = A.empty({R, C}), s.gate_msa = A.empty({R, C});
  s.scale_mlp = A.empty({R, C}), s.gate_mlp = A.empty({R, C});
  chunked_linear_forward(ps, ada,
                         {shift_msa, s.scale_msa, s.gate_msa, shift_mlp, s.scale_mlp, s.gate_mlp},
                         s.cond_act);

  // Attention branch.
  s.rstd1 = A.empty({N}, DType::F32);
  s.h1 = A.empty({B, T, C});
  ops::rmsnorm_modulate_forward(s.h1, s.rstd1, x_in, ps.value(norm1), mshape(shift_msa),
                                mshape(s.scale_msa), kNormEps);
  s.qkv = A.empty({N, 3 * C});
  qkv.forward(ps, s.qkv, s.h1.view({N, C}));
  Tensor qkv5 = s.qkv.view({B, T, 3, heads, head_dim});
  ops::rope_apply(qkv5, cos, sin);
  s.att = A.empty({B, T, heads, head_dim});
  s.lse = A.empty({B, heads, T}, DType::F32);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  ops::attention_forward(s.att, s.lse, qkv5, scale);
  s.y1 = A.empty({B, T, C});
  proj.forward(ps, s.y1.view({N, C}), s.att.view({N, C}));
  s.x_mid = A.empty({B, T, C});
  s.x_mid.copy_from(x_in);
  ops::gate_residual_forward(s.x_mid, s.y1, mshape(s.gate_msa));

  // MLP branch.
  s.rstd2 = A.empty({N}, DType::F32);
  s.h2 = A.empty({B, T, C});
  ops::rmsnorm_modulate_forward(s.h2, s.rstd2, s.x_mid, ps.value(norm2), mshape(shift_mlp),
                                mshape(s.scale_mlp), kNormEps);
  s.u = A.empty({N, 2 * hidden});
  w12.forward(ps, s.u, s.h2.view({N, C}));
  s.g = A.empty({N, hidden});
  ops::swiglu_forward(s.g, s.u);
  s.y2 = A.empty({B, T, C});
  w3.forward(ps, s.y2.view({N, C}), s.g);
  Tensor(x_out).copy_from(s.x_mid);
  ops::gate_residual_forward(x_out, s.y2, mshape(s.gate_mlp));
}

void DiTBlock::backward(const ParamStore& ps, Arena& A, const Saved& s, const Tensor& dx,
                        const Tensor& dcond, const Tensor& cos, const Tensor& sin) const {
  const int64_t B = s.B, T = s.T, C = width, N = B * T;
  const int64_t R = s.per_token ? N : B;
  auto mshape = [&](const Tensor& t) { return s.per_token ? t.view({B, T, C}) : t.view({B, C}); };
  // Every gradient buffer below is fresh: its first writer overwrites it (ops/grad_mode.h), so
  // none is zero-filled. With the switch off (RAE_GRAD_OVERWRITE=0) they are zero-filled and
  // accumulated into, as before the mode existed; the values are the same.
  const bool ow = ops::grad_overwrite_enabled();
  const ops::GradMode first = ow ? ops::GradMode::Overwrite : ops::GradMode::Accumulate;
  auto fresh = [&](const Shape& shape) { return ow ? A.empty(shape) : A.zeros(shape); };
  Tensor d_shift_msa = fresh({R, C}), d_scale_msa = fresh({R, C}), d_gate_msa = fresh({R, C});
  Tensor d_shift_mlp = fresh({R, C}), d_scale_mlp = fresh({R, C}), d_gate_mlp = fresh({R, C});

  // MLP branch: x_out = x_mid + gate_mlp * y2; the residual passes dx to x_mid unchanged.
  Tensor dy2 = fresh({B, T, C});
  ops::gate_residual_backward(dy2, mshape(d_gate_mlp), dx, s.y2, mshape(s.gate_mlp), first);
  Tensor dg = fresh({N, hidden});
  w3.backward(ps, dg, dy2.view({N, C}), s.g, first);
  Tensor du = fresh({N, 2 * hidden});
  ops::swiglu_backward(du, dg, s.u, first);
  Tensor dh2 = fresh({B, T, C});
  w12.backward(ps, dh2.view({N, C}), du, s.h2.view({N, C}), first);
  // dx accumulates (the residual stream); d_shift_mlp / d_scale_mlp are written here first.
  ops::rmsnorm_modulate_backward(dx, ps.grad(norm2), mshape(d_shift_mlp), mshape(d_scale_mlp), dh2,
                                 s.x_mid, ps.value(norm2), mshape(s.scale_mlp), s.rstd2, first);

  // Attention branch: x_mid = x_in + gate_msa * y1.
  Tensor dy1 = fresh({B, T, C});
  ops::gate_residual_backward(dy1, mshape(d_gate_msa), dx, s.y1, mshape(s.gate_msa), first);
  Tensor datt = fresh({B, T, heads, head_dim});
  proj.backward(ps, datt.view({N, C}), dy1.view({N, C}), s.att.view({N, C}), first);
  Tensor dqkv = fresh({N, 3 * C});
  Tensor dqkv5 = dqkv.view({B, T, 3, heads, head_dim});
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  ops::attention_backward(dqkv5, datt, s.qkv.view({B, T, 3, heads, head_dim}), s.att, s.lse, scale,
                          first);
  ops::rope_apply_backward(dqkv5, cos, sin);
  Tensor dh1 = fresh({B, T, C});
  qkv.backward(ps, dh1.view({N, C}), dqkv, s.h1.view({N, C}), first);
  ops::rmsnorm_modulate_backward(dx, ps.grad(norm1), mshape(d_shift_msa), mshape(d_scale_msa), dh1,
                                 s.x_in, ps.value(norm1), mshape(s.scale_msa), s.rstd1, first);

  // adaLN: back through the chunk split, the Linear and the SiLU into the condition.
  Tensor dact = fresh({R, C});
  chunked_linear_backward(
      ps, ada, dact, {d_shift_msa, d_scale_msa, d_gate_msa, d_shift_mlp, d_scale_mlp, d_gate_mlp},
      s.cond_act, first);
  ops::silu_backward(dcond.view({R, C}), dact, s.cond.view({R, C}));
}

}  // namespace rae::nn
