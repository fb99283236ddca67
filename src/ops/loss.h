// The losses of stage-1 training (the RAE release's src/train_stage1.py and src/disc/): L1 on
// pixels, the GAN terms (hinge for the discriminator, -mean(logits) for the generator), the
// discriminator's accuracy, and one layer of the LPIPS distance.
//
// Each forward returns a MEAN over the elements (or rows) as a host double, summed in a fixed
// order (bit-identical across runs and thread counts); each backward ACCUMULATES
// scale * d(mean)/dx, so a caller passes the loss weight times its micro-batch share as `scale`.
// All tensors are contiguous; CPU F32/F64, CUDA F32/BF16 (F32 math, double sums).
//
//   l1:     mean |pred - target|;                 d/dpred = sign(pred - target) / n (sign(0) = 0)
//   hinge:  mean relu(1 + sign * x), sign = +1 for fake logits, -1 for real ones; the release's
//           hinge_d_loss is 0.5 * (hinge(real, -1) + hinge(fake, +1)); d/dx = sign [1 + sign x > 0]
//           / n
//   mean:   mean x (the generator's loss is -mean(logits_fake)); d/dx = 1 / n
//   count_greater: #{i : a_i > b_i} (the discriminator's accuracy: logits_real > logits_fake)
//   lpips_distance: features fx, fy (M, C) (rows = pixels of an NHWC map), head weights w (C):
//           per row n = f / (||f||_2 + eps) (lpips' normalize_tensor, eps 1e-10) and
//           d = sum_c w_c (nx_c - ny_c)^2 (the 1x1 "lin" conv), returned as the mean over rows
//           (spatial average, then batch mean: every image has the same rows). Gradient w.r.t. fx
//           only (fy is the real image's, a constant): with g_c = 2 w_c (nx_c - ny_c) / M,
//           dfx = g / (r + eps) - fx (g . fx) / (r (r + eps)^2), r = ||fx||; the second term is
//           taken as 0 where r = 0 (PyTorch gives NaN there: sqrt's derivative at 0).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace rae::ops {

double l1_forward(const Tensor& pred, const Tensor& target);
void l1_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale);
double hinge_forward(const Tensor& x, double sign);
void hinge_backward(const Tensor& dx, const Tensor& x, double sign, double scale);
double mean_forward(const Tensor& x);
void mean_backward(const Tensor& dx, double scale);
int64_t count_greater(const Tensor& a, const Tensor& b);
double lpips_distance_forward(const Tensor& fx, const Tensor& fy, const Tensor& w,
                              double eps = 1e-10);
void lpips_distance_backward(const Tensor& dfx, const Tensor& fx, const Tensor& fy, const Tensor& w,
                             double eps, double scale);

namespace cpu {
double l1_forward(const Tensor& pred, const Tensor& target);
void l1_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale);
double hinge_forward(const Tensor& x, double sign);
void hinge_backward(const Tensor& dx, const Tensor& x, double sign, double scale);
double mean_forward(const Tensor& x);
void mean_backward(const Tensor& dx, double scale);
int64_t count_greater(const Tensor& a, const Tensor& b);
double lpips_distance_forward(const Tensor& fx, const Tensor& fy, const Tensor& w, double eps);
void lpips_distance_backward(const Tensor& dfx, const Tensor& fx, const Tensor& fy, const Tensor& w,
                             double eps, double scale);
}  // namespace cpu
namespace cuda {
double l1_forward(const Tensor& pred, const Tensor& target);
void l1_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale);
double hinge_forward(const Tensor& x, double sign);
void hinge_backward(const Tensor& dx, const Tensor& x, double sign, double scale);
double mean_forward(const Tensor& x);
void mean_backward(const Tensor& dx, double scale);
int64_t count_greater(const Tensor& a, const Tensor& b);
double lpips_distance_forward(const Tensor& fx, const Tensor& fy, const Tensor& w, double eps);
void lpips_distance_backward(const Tensor& dfx, const Tensor& fx, const Tensor& fy, const Tensor& w,
                             double eps, double scale);
}  // namespace cuda

}  // namespace rae::ops
