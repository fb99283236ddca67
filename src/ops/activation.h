// Pointwise activations: GELU (exact and tanh), SiLU, SwiGLU.
#pragma once
#include "ops/grad_mode.h"
#include "tensor/tensor.h"

namespace rae::ops {

enum class GeluKind { Exact, Tanh };

void gelu_forward(const Tensor& out, const Tensor& x, GeluKind kind);
void gelu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, GeluKind kind);
void silu_forward(const Tensor& out, const Tensor& x);
void silu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x);
// x12 (N, 2H) = [x1 | x2] (chunk along the last dim, as torch.chunk(2, -1));
// out (N, H) = silu(x1) * x2.
void swiglu_forward(const Tensor& out, const Tensor& x12);
// dx12 += ...; GradMode::Overwrite: dx12 = ...
void swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12,
                     GradMode mode = GradMode::Accumulate);

namespace cpu {
void gelu_forward(const Tensor& out, const Tensor& x, GeluKind kind);
void gelu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, GeluKind kind);
void silu_forward(const Tensor& out, const Tensor& x);
void silu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x);
void swiglu_forward(const Tensor& out, const Tensor& x12);
void swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12,
                     GradMode mode = GradMode::Accumulate);
}  // namespace cpu
namespace cuda {
void gelu_forward(const Tensor& out, const Tensor& x, GeluKind kind);
void gelu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, GeluKind kind);
void silu_forward(const Tensor& out, const Tensor& x);
void silu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x);
void swiglu_forward(const Tensor& out, const Tensor& x12);
void swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12,
                     GradMode mode = GradMode::Accumulate);
}  // namespace cuda

}  // namespace rae::ops
