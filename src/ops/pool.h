// 2-D pooling, channels last: x (N, H, W, C), out (N, OH, OW, C) with
// OH = (H + 2 pad_h - kernel_h) / stride_h + 1 (floor, PyTorch's ceil_mode=False).
//
// max_pool2d: padded positions never win (PyTorch pads with -inf); ties go to the first
// maximum in (kh, kw) scan order, as PyTorch, and the backward routes the gradient there.
// avg_pool2d: count_include_pad = true divides by kernel_h * kernel_w (PyTorch's default);
// false divides by the number of in-image positions of the window (TensorFlow's average pool,
// which torch-fidelity's Inception blocks emulate with count_include_pad=False).
// adaptive_avg_pool2d: output cell (i, j) averages rows [floor(i H / OH), ceil((i + 1) H / OH))
// and the same for columns (PyTorch's AdaptiveAvgPool2d); OH = OW = 1 is global average pooling.
//
// x, out, dout and dx are row-strided (rows of C with a uniform row stride), so a pool can
// write a channel slice of a concat buffer (Inception's pool branches). Backward ops gather:
// every dx element sums the outputs whose windows contain it, in a fixed order, so results
// are deterministic on both backends (no atomics).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace rae::ops {

struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  bool count_include_pad = true;  // avg_pool2d only
  // Square kernel k, stride s (0: = k, PyTorch's default), padding p.
  static Pool2dParams square(int64_t k, int64_t s = 0, int64_t p = 0, bool include_pad = true) {
    Pool2dParams q;
    q.kernel_h = q.kernel_w = k;
    q.stride_h = q.stride_w = s > 0 ? s : k;
    q.pad_h = q.pad_w = p;
    q.count_include_pad = include_pad;
    return q;
  }
};

// Output shape of a pooled x (N, H, W, C); throws naming `op` on a bad geometry (padding
// larger than half the kernel, as PyTorch refuses, or a window larger than the padded input).
Shape pool2d_out_shape(const Shape& x, const Pool2dParams& p, const char* op = "pool2d");

void max_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p);
void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& x,
                         const Pool2dParams& p);
void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const Pool2dParams& p);
// out (N, OH, OW, C) from x (N, H, W, C), any OH, OW >= 1 (the output shape sets them).
void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x);
void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout);

// The geometry the backends work from (filled by the dispatch).
struct PoolGeometry {
  int64_t N = 0, H = 0, W = 0, C = 0, OH = 0, OW = 0;
  Pool2dParams p;
};

namespace cpu {
void max_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g);
void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& x,
                         const PoolGeometry& g);
void avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g);
void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& g);
void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g);
void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& g);
}  // namespace cpu
namespace cuda {
void max_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g);
void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& x,
                         const PoolGeometry& g);
void avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g);
void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& g);
void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g);
void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& g);
}  // namespace cuda

}  // namespace rae::ops
