// Softmax and fused multi-head scaled dot-product attention (flash-style: saves the
// log-sum-exp, not the T x T probabilities), and EVA-style 2D rotary embedding.
#pragma once
#include "ops/grad_mode.h"
#include "tensor/tensor.h"

namespace rae::ops {

// Row softmax over the last dim of x (N, C).
void softmax_forward(const Tensor& out, const Tensor& x);
void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& out);

// qkv (B, T, 3, H, D) packed as a qkv Linear's output viewed; out (B, T, H, D);
// lse (B, H, T) in F32 (F64 for F64 inputs). Non-causal. scale usually 1/sqrt(D).
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, double scale);
// Accumulates into dqkv (B, T, 3, H, D); GradMode::Overwrite writes it (the fused cuDNN path then
// writes straight into dqkv, with no scratch buffer and no add pass).
void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                        const Tensor& out, const Tensor& lse, double scale,
                        GradMode mode = GradMode::Accumulate);

// EVA-style 2D RoPE tables as in the RAE release (VisionRotaryEmbeddingFast with
// dim = head_dim / 2, pt_seq_len = grid): cos, sin (grid_h * grid_w, head_dim), F32.
// Built on the CPU; copy to the device once.
void rope2d_tables(const Tensor& cos, const Tensor& sin, int64_t grid_h, int64_t grid_w,
                   int64_t head_dim, double theta);
// In place on the q and k parts of qkv (B, T, 3, H, D): t = t * cos + rotate_half(t) * sin,
// rotate_half pairing adjacent elements (x0, x1) -> (-x1, x0).
void rope_apply(const Tensor& qkv, const Tensor& cos, const Tensor& sin);
// In place on dqkv's q and k parts: the transpose of rope_apply (rotation by -angle).
void rope_apply_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin);

namespace cpu {
void rope2d_tables(const Tensor& cos, const Tensor& sin, int64_t grid_h, int64_t grid_w,
                   int64_t head_dim, double theta);
void softmax_forward(const Tensor& out, const Tensor& x);
void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& out);
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, double scale);
void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                        const Tensor& out, const Tensor& lse, double scale,
                        GradMode mode = GradMode::Accumulate);
void rope_apply(const Tensor& qkv, const Tensor& cos, const Tensor& sin);
void rope_apply_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin);
}  // namespace cpu
namespace cuda {
void softmax_forward(const Tensor& out, const Tensor& x);
void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& out);
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, double scale);
void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                        const Tensor& out, const Tensor& lse, double scale,
                        GradMode mode = GradMode::Accumulate);
void rope_apply(const Tensor& qkv, const Tensor& cos, const Tensor& sin);
void rope_apply_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin);
}  // namespace cuda

}  // namespace rae::ops
