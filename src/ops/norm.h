// LayerNorm, RMSNorm, and RMSNorm fused with adaLN modulation.
#pragma once
#include "ops/grad_mode.h"
#include "tensor/tensor.h"

namespace rae::ops {

// x (N, C) -> out (N, C); saves mean (N) and rstd (N) (F32, or F64 for F64 inputs).
// w, b (C) may be undefined (no affine).
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps);
void layernorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd);

// out = x * rsqrt(mean(x^2) + eps) * w. w (C) may be undefined. Saves rstd (N).
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                     double eps = 1e-6);  // the release's RMSNorm default
void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                      const Tensor& w, const Tensor& rstd);

// Fused adaLN: out (B, T, C) = rmsnorm(x; w) * (1 + scale) + shift, where shift and scale are
// per sample (B, C) or per token (B, T, C). shift may be undefined (no shift). Saves rstd (B*T).
void rmsnorm_modulate_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& w, const Tensor& shift, const Tensor& scale,
                              double eps = 1e-6);
// GradMode::Overwrite: dshift and dscale are written (=); dx (a residual stream) and dw
// accumulate as always.
void rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                               const Tensor& dscale, const Tensor& dout, const Tensor& x,
                               const Tensor& w, const Tensor& scale, const Tensor& rstd,
                               GradMode mode = GradMode::Accumulate);

namespace cpu {
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps);
void layernorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd);
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                     double eps);
void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                      const Tensor& w, const Tensor& rstd);
void rmsnorm_modulate_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& w, const Tensor& shift, const Tensor& scale,
                              double eps);
void rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                               const Tensor& dscale, const Tensor& dout, const Tensor& x,
                               const Tensor& w, const Tensor& scale, const Tensor& rstd,
                               GradMode mode = GradMode::Accumulate);
}  // namespace cpu
namespace cuda {
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps);
void layernorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd);
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                     double eps);
void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                      const Tensor& w, const Tensor& rstd);
void rmsnorm_modulate_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& w, const Tensor& shift, const Tensor& scale,
                              double eps);
void rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                               const Tensor& dscale, const Tensor& dout, const Tensor& x,
                               const Tensor& w, const Tensor& scale, const Tensor& rstd,
                               GradMode mode = GradMode::Accumulate);
}  // namespace cuda

}  // namespace rae::ops
