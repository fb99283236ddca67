// Image resize for the FID Inception input: TensorFlow 1.x bilinear resize (align_corners=False,
// no half-pixel centres), reproducing torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x
// (method "slow", its default) operation for operation, then out = (v - sub) / div:
//   scale   = float32(in / out)                      (per dimension; torch.tensor(..., float32))
//   pos     = T(i) * T(scale), lo = trunc(pos), hi = min(lo + 1, in - 1), d = pos - T(lo)
//   top     = x[lo_y, lo_x] + (x[lo_y, hi_x] - x[lo_y, lo_x]) * d_x   (and bottom with hi_y)
//   v       = top + (bottom - top) * d_y
// with every operation rounded in T, the output's dtype (F32 on both backends, bit-identical to
// torch-fidelity's float32 path; F64 on the CPU, its float64 path). Inception calls it with
// sub = div = 128: torch-fidelity's (x - 128) / 128. BF16 outputs (CUDA) compute in F32 and
// round once at the end.
// Layout: x (N, H, W, C) U8 or the output's float dtype; out (N, OH, OW, C); both contiguous.
// Forward only (no backward: nothing trains through the evaluation network's input).
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

void resize_bilinear_tf1(const Tensor& out, const Tensor& x, double sub = 0.0, double div = 1.0);

namespace cpu {
void resize_bilinear_tf1(const Tensor& out, const Tensor& x, double sub, double div);
}
namespace cuda {
void resize_bilinear_tf1(const Tensor& out, const Tensor& x, double sub, double div);
}

}  // namespace rae::ops
