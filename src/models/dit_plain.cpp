// The plain LightningDiT of the release (src/stage2/models/lightningDiT.py): x embedded once
// with the sin-cos positions, c = t_emb + y_emb (no SiLU before the blocks' own SiLU), the
// blocks of DiT^DH conditioned per sample on c, and a final layer modulated per sample by c.
#include "models/dit.h"
#include "ops/activation.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/norm.h"

namespace rae::models {

namespace {
constexpr double kNormEps = 1e-6;
}

void DiTDH::forward_plain(nn::Arena& A, const Tensor& out, const Tensor& x, const Tensor& t,
                          const Tensor& y) {
  const int64_t B = x.dim(0), T = cfg_.tokens(), C = cfg_.in_channels, N = B * T;
  const int64_t W = cfg_.body_width, D = cfg_.body_depth;
  RAE_CHECK(x.ndim() == 3 && x.dim(1) == T && x.dim(2) == C, "DiT forward: x is ", x.shape().str(),
            ", expected (B, ", T, ", ", C, ")");
  Saved& s = sv_;
  s.B = B, s.x = x, s.t = t, s.y = y;
  s.c = A.empty({B, W});
  condition_forward(A, s.c, t, y);
  s.xs.assign(D + 1, Tensor());
  s.blk.resize(D);
  body_forward(A, x_embedder_, x);
  s.fa = A.empty({B, W});
  ops::silu_forward(s.fa, s.c);
  Tensor shift = A.empty({B, W});
  s.f_scale = A.empty({B, W});
  nn::chunked_linear_forward(ps_, final_ada_, {shift, s.f_scale}, s.fa);
  s.rstd_f = A.empty({N}, DType::F32);
  s.hf = A.empty({B, T, W});
  ops::rmsnorm_modulate_forward(s.hf, s.rstd_f, s.xs[D], ps_.value(final_norm_), shift, s.f_scale,
                                kNormEps);
  final_linear_.forward(ps_, out.view({N, C}), s.hf.view({N, W}));
}

void DiTDH::backward_plain(nn::Arena& A, const Tensor& dout) {
  Saved& s = sv_;
  const int64_t B = s.B, T = cfg_.tokens(), C = cfg_.in_channels, N = B * T;
  const int64_t W = cfg_.body_width, D = cfg_.body_depth;
  Tensor dhf = A.zeros({B, T, W});
  final_linear_.backward(ps_, dhf.view({N, W}), dout.view({N, C}), s.hf.view({N, W}));
  Tensor dx = A.zeros({B, T, W});
  Tensor dshift = A.zeros({B, W}), dscale = A.zeros({B, W});
  ops::rmsnorm_modulate_backward(dx, ps_.grad(final_norm_), dshift, dscale, dhf, s.xs[D],
                                 ps_.value(final_norm_), s.f_scale, s.rstd_f);
  Tensor dfa = A.zeros({B, W});
  nn::chunked_linear_backward(ps_, final_ada_, dfa, {dshift, dscale}, s.fa);
  Tensor dc = A.zeros({B, W});
  ops::silu_backward(dc, dfa, s.c);
  body_backward(A, x_embedder_, dx, dc);
  // c = t_emb + y_emb.
  condition_backward(A, dc, dc);
}

}  // namespace rae::models
