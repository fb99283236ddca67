// Embeddings: fixed 2D sin-cos positions, Gaussian Fourier time features, label tables,
// and patchify/unpatchify between images and token rows.
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

// out (H*W, C): MAE/DiT get_2d_sincos_pos_embed (first half encodes w... exactly as the RAE
// release's get_2d_sincos_pos_embed, no cls token). CPU, F32 or F64.
void sincos_pos_embed_2d(const Tensor& out, int64_t grid_h, int64_t grid_w);

// Gaussian Fourier features: out (B, 2F) = [sin(2*pi*t*W), cos(2*pi*t*W)], t (B), W (F) fixed.
// No gradient flows to t or W (the release stops it).
void fourier_features(const Tensor& out, const Tensor& t, const Tensor& W);

// Rows of a table: out (B, C) = table[labels[b]] with labels (B) I32; backward accumulates
// dout rows into dtable (K, C).
void embedding_forward(const Tensor& out, const Tensor& table, const Tensor& labels);
void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& labels);

// img (B, C, H, W) <-> tokens (B, (H/p)*(W/p), p*p*C), token channel order (p_h, p_w, c)
// as the RAE decoder's unpatchify ("nhwpqc").
void patchify(const Tensor& tokens, const Tensor& img, int64_t p);
void unpatchify(const Tensor& img, const Tensor& tokens, int64_t p);

namespace cpu {
void sincos_pos_embed_2d(const Tensor& out, int64_t grid_h, int64_t grid_w);
void fourier_features(const Tensor& out, const Tensor& t, const Tensor& W);
void embedding_forward(const Tensor& out, const Tensor& table, const Tensor& labels);
void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& labels);
void patchify(const Tensor& tokens, const Tensor& img, int64_t p);
void unpatchify(const Tensor& img, const Tensor& tokens, int64_t p);
}  // namespace cpu
namespace cuda {
void fourier_features(const Tensor& out, const Tensor& t, const Tensor& W);
void embedding_forward(const Tensor& out, const Tensor& table, const Tensor& labels);
void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& labels);
void patchify(const Tensor& tokens, const Tensor& img, int64_t p);
void unpatchify(const Tensor& img, const Tensor& tokens, int64_t p);
}  // namespace cuda

}  // namespace rae::ops
