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
// source indices lo <= hi and their weights. `scale` = in / out as PyTorch computes it (float).
struct BilinearTap {
  int lo, hi;
  float w_lo, w_hi;
};
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline BilinearTap
    bilinear_tap(int j, int in, float scale) {
  float src = scale * (static_cast<float>(j) + 0.5f) - 0.5f;
  if (src < 0.f) src = 0.f;
  const int lo = static_cast<int>(src);
  const int hi = lo < in - 1 ? lo + 1 : lo;
  const float l1 = src - static_cast<float>(lo);
  return BilinearTap{lo, hi, 1.f - l1, l1};
}
// The weight of input index i in output index j (0 when j's taps miss i; both taps when lo = hi).
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline float
    bilinear_weight(int j, int i, int in, float scale) {
  const BilinearTap t = bilinear_tap(j, in, scale);
  return (t.lo == i ? t.w_lo : 0.f) + (t.hi == i ? t.w_hi : 0.f);
}
// The output indices [first, last] whose taps may touch input index i (a superset; the weight
// above is 0 for the others).
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline void
    bilinear_span(int i, int in, int out, float scale, int* first, int* last) {
  // src(j) = scale (j + 0.5) - 0.5 is increasing; lo(j) >= i - 1 needs j >= (i - 0.5) / scale -
  // 0.5.
  const float inv = 1.f / scale;
  int a = static_cast<int>((static_cast<float>(i) - 1.5f) * inv - 0.5f) - 1;
  int b = static_cast<int>((static_cast<float>(i) + 1.5f) * inv - 0.5f) + 2;
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
