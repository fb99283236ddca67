// 2-D and 1-D convolution, channels last, dilation 1, groups 1, optional bias.
//
// Layout (channels last, NHWC):
//   conv2d: x (N, H, W, C), w (O, KH, KW, C), b (O) or undefined, out (N, OH, OW, O) with
//           OH = (H + 2 pad_h - KH) / stride_h + 1 and OW likewise (PyTorch's floor rule).
//   conv1d: the H = 1 case: x (N, L, C), w (O, K, C), out (N, OL, O).
// PyTorch's weights convert as conv2d w_pt (O, C, KH, KW) -> w_pt.permute(0, 2, 3, 1) and
// conv1d w_pt (O, C, K) -> w_pt.permute(0, 2, 1).
// Why channels last: the CPU path is im2col + one GEMM whose patch rows are (KH, KW, C) runs of
// contiguous channels (a 1x1 stride-1 convolution is a plain GEMM on x, no copy at all), cuDNN's
// tensor-core kernels prefer NHWC, ViT tokens (B, T, C) feed conv1d without a transpose (the
// GAN discriminator's heads), batch norm is a column reduction over rows of C, and Inception's
// spatial features come out in the ADM evaluator's (TF, NHWC) flattening order.
// Padding is symmetric per dimension (pad_h above and below, pad_w left and right), as PyTorch's
// nn.Conv2d and cuDNN; Inception's (1, 7) / (7, 1) kernels use (pad_h, pad_w) = (0, 3) / (3, 0).
//
// Layouts accepted: x, out and dout may be row-strided (rows of channels with a uniform row
// stride; e.g. `out` a channel slice narrow(-1, k, O) of a wider concat buffer, which is how
// Inception writes its branches without a concat copy). w, b, dx, dw, db are contiguous.
// The weight is an argument of every call (no cached copy), so a spectral-normalised weight
// computed per step needs nothing special.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace rae::ops {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  // Forward-only epilogue: out = max(conv(x) + b, 0), for inference networks (Inception's
  // conv + folded batch norm + ReLU). conv2d_backward refuses it: training keeps ReLU separate.
  bool relu = false;
};

struct Conv1dParams {
  int64_t stride = 1, pad = 0;
  bool relu = false;  // as Conv2dParams::relu
};

// How the CUDA backend picks a cuDNN algorithm for a new shape. Heuristic (the default): cuDNN's
// own ranking, no trial runs, as PyTorch with cudnn.benchmark = False. Measure: cudnnFind* runs
// every candidate once per shape and keeps the fastest, as cudnn.benchmark = True; it costs
// seconds per new shape and pays off on long runs of fixed shapes. Backward passes take the
// best DETERMINISTIC algorithm either way. CPU ops ignore it.
enum class ConvAlgoSearch { Heuristic, Measure };
void set_conv_algo_search(ConvAlgoSearch s);
ConvAlgoSearch conv_algo_search();

// Output extent along one dimension: (in + 2 pad - k) / stride + 1 (floor); throws when < 1.
int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad);

void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const Conv2dParams& p);
// dx (N, H, W, C) += d/dx, dw (O, KH, KW, C) += d/dw, db (O) += sum of dout over rows.
void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Conv2dParams& p);

void conv1d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const Conv1dParams& p);
void conv1d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Conv1dParams& p);

// The geometry both backends work from (the dispatch fills it from 4-D or 3-D shapes, so
// conv1d needs no reshaped views of row-strided tensors). Tensors are read as rows of channels:
// x rows (N * H * W, C), out/dout rows (N * OH * OW, O), w (O, KH * KW * C).
struct ConvGeometry {
  int64_t N = 0, H = 0, W = 0, C = 0;
  int64_t O = 0, KH = 0, KW = 0;
  int64_t OH = 0, OW = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool relu = false;
  int64_t patch() const { return KH * KW * C; }  // GEMM inner dim
  bool pointwise() const {                       // 1x1, stride 1, no padding: out = x @ w^T
    return KH == 1 && KW == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  }
};

namespace cpu {
void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvGeometry& g);
void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const ConvGeometry& g);
}  // namespace cpu
namespace cuda {
void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvGeometry& g);
void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const ConvGeometry& g);
}  // namespace cuda

}  // namespace rae::ops
