// Pixel-space ops of stage-1 training, channels last like the other vision ops (conv.h):
// images are NHWC (N, H, W, C) with few channels (RGB).
//
// channel_affine:  out[..., c] = x[..., c] * scale[c] + shift[c] (at most 8 channels): pixel
//                  (de)normalisation, x * 2 - 1, the discriminator's x * x_scale + x_shift.
//                  Backward: dx += dout * scale. x/out/dout/dx row-strided.
// quantize_pm1:    the release's discretisation of the discriminator's fake input:
//                  round((clamp(x, -1, 1) + 1) * 127.5) / 127.5 - 1, round half to even as
//                  torch.round. Forward only (it runs on detached reconstructions).
// resize_bilinear: PyTorch's F.interpolate(mode="bilinear", align_corners=False, antialias=False)
//                  to (OH, OW): per output index j, src = max((j + 0.5) * in / out - 0.5, 0),
//                  lo = floor(src), hi = min(lo + 1, in - 1), weights (1 - (src - lo), src - lo),
//                  separably in H and W. Backward (dx += W^T dout) gathers over the outputs whose
//                  taps touch each input pixel, in a fixed order: deterministic, no atomics.
//                  x/out/dx/dout contiguous.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace rae::ops {

constexpr int kMaxAffineChannels = 8;

void channel_affine_forward(const Tensor& out, const Tensor& x, const std::vector<double>& scale,
                            const std::vector<double>& shift);
void channel_affine_backward(const Tensor& dx, const Tensor& dout,
                             const std::vector<double>& scale);
void quantize_pm1(const Tensor& out, const Tensor& x);
void resize_bilinear_forward(const Tensor& out, const Tensor& x);
void resize_bilinear_backward(const Tensor& dx, const Tensor& dout);

// One output index's bilinear taps (shared by the backends and the backward's gather): the
// source indices lo <= hi and their weights, computed in R (float for F32/BF16 data, double for
// F64: PyTorch's opmath type). `scale` = in / out as PyTorch computes it in R.
template <class R>
struct BilinearTap {
  int lo, hi;
  R w_lo, w_hi;
};
template <class R>
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline BilinearTap<R>
    bilinear_tap(int j, int in, R scale) {
  R src = scale * (static_cast<R>(j) + R(0.5)) - R(0.5);
  if (src < R(0)) src = R(0);
  const int lo = static_cast<int>(src);
  const int hi = lo < in - 1 ? lo + 1 : lo;
  const R l1 = src - static_cast<R>(lo);
  return BilinearTap<R>{lo, hi, R(1) - l1, l1};
}
// The weight of input index i in output index j (0 when j's taps miss i; both taps when lo = hi).
template <class R>
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline R
    bilinear_weight(int j, int i, int in, R scale) {
  const BilinearTap<R> t = bilinear_tap(j, in, scale);
  return (t.lo == i ? t.w_lo : R(0)) + (t.hi == i ? t.w_hi : R(0));
}
// The output indices [first, last] whose taps may touch input index i (a superset; the weight
// above is 0 for the others).
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline void
    bilinear_span(int i, int out, double scale, int* first, int* last) {
  // src(j) = scale (j + 0.5) - 0.5 is increasing; lo(j) >= i - 1 needs j >= (i - 0.5) / scale -
  // 0.5.
  const double inv = 1.0 / scale;
  int a = static_cast<int>((i - 1.5) * inv - 0.5) - 1;
  int b = static_cast<int>((i + 1.5) * inv - 0.5) + 2;
  *first = a < 0 ? 0 : a;
  *last = b > out - 1 ? out - 1 : b;
}

namespace cpu {
void channel_affine_forward(const Tensor& out, const Tensor& x, const std::vector<double>& scale,
                            const std::vector<double>& shift);
void channel_affine_backward(const Tensor& dx, const Tensor& dout,
                             const std::vector<double>& scale);
void quantize_pm1(const Tensor& out, const Tensor& x);
void resize_bilinear_forward(const Tensor& out, const Tensor& x);
void resize_bilinear_backward(const Tensor& dx, const Tensor& dout);
}  // namespace cpu
namespace cuda {
void channel_affine_forward(const Tensor& out, const Tensor& x, const std::vector<double>& scale,
                            const std::vector<double>& shift);
void channel_affine_backward(const Tensor& dx, const Tensor& dout,
                             const std::vector<double>& scale);
void quantize_pm1(const Tensor& out, const Tensor& x);
void resize_bilinear_forward(const Tensor& out, const Tensor& x);
void resize_bilinear_backward(const Tensor& dx, const Tensor& dout);
}  // namespace cuda

}  // namespace rae::ops
