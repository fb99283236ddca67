// adaLN modulation and gated residuals, per sample (B, C) or per token (B, T, C) conditioning.
#pragma once
#include "ops/grad_mode.h"
#include "tensor/tensor.h"

namespace rae::ops {

// out (B, T, C) = x * (1 + scale) + shift; shift/scale (B, C) or (B, T, C); shift may be undefined.
void modulate_forward(const Tensor& out, const Tensor& x, const Tensor& shift, const Tensor& scale);
void modulate_backward(const Tensor& dx, const Tensor& dshift, const Tensor& dscale,
                       const Tensor& dout, const Tensor& x, const Tensor& scale);

// Gated residual, in place: x (B, T, C) += gate * y; gate (B, C) or (B, T, C).
void gate_residual_forward(const Tensor& x, const Tensor& y, const Tensor& gate);
// Given dres = dL/dx_after (which also flows unchanged to x_before, so the caller keeps it):
// dy += gate * dres; dgate += reduce(dres * y) over the broadcast dims. GradMode::Overwrite:
// dy and dgate are written (=), not accumulated.
void gate_residual_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres,
                            const Tensor& y, const Tensor& gate,
                            GradMode mode = GradMode::Accumulate);

namespace cpu {
void modulate_forward(const Tensor& out, const Tensor& x, const Tensor& shift, const Tensor& scale);
void modulate_backward(const Tensor& dx, const Tensor& dshift, const Tensor& dscale,
                       const Tensor& dout, const Tensor& x, const Tensor& scale);
void gate_residual_forward(const Tensor& x, const Tensor& y, const Tensor& gate);
void gate_residual_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres,
                            const Tensor& y, const Tensor& gate,
                            GradMode mode = GradMode::Accumulate);
}  // namespace cpu
namespace cuda {
void modulate_forward(const Tensor& out, const Tensor& x, const Tensor& shift, const Tensor& scale);
void modulate_backward(const Tensor& dx, const Tensor& dshift, const Tensor& dscale,
                       const Tensor& dout, const Tensor& x, const Tensor& scale);
void gate_residual_forward(const Tensor& x, const Tensor& y, const Tensor& gate);
void gate_residual_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres,
                            const Tensor& y, const Tensor& gate,
                            GradMode mode = GradMode::Accumulate);
}  // namespace cuda

}  // namespace rae::ops
