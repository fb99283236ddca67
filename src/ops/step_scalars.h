// Step scalars on the device: the pieces of a training step that would otherwise bring a value
// to the host in the middle of the step (the loss, the gradient norm, the clip coefficient and
// the non-finite check) and the per-step values AdamW reads (learning rate, bias corrections).
// A CUDA graph replays the whole step with no host round trip (train/graph_step.h); the host
// writes the per-step slots before a replay and reads the loss, the norm and the skip flag
// after it. Every op gives exactly the values of its eager counterpart (mse_forward,
// sum_squares, clip_coefficient, adamw_step, ema_update) computed from the same inputs in the
// same order: the same kernels reduce, and the host computes the per-step doubles as the eager
// optimizer does.
#pragma once
#include <cstdint>

#include "ops/optim.h"
#include "tensor/tensor.h"

namespace rae::ops {

// Slots of the step-scalar tensor: (kStepScalarCount) F64 on the step's device.
enum StepScalar : int {
  kLoss = 0,         // sum of the micro-batches' share-weighted losses (mse_forward_acc)
  kGradSumSq = 1,    // sum of squares of every gradient buffer (sum_squares_acc)
  kLr = 2,           // written by the host (fill_adamw_scalars)
  kAdamStep = 3,     // the 1-based AdamW step this update will be
  kBiasCorr1 = 4,    // 1 - beta1^step
  kBc2SqrtInv = 5,   // 1 / sqrt(1 - beta2^step)
  kDecayFactor = 6,  // 1 - lr * weight_decay
  kClipCoef = 7,     // written by step_control
  kSkip = 8,         // 1: the loss or the norm is not finite; AdamW and EMA do nothing
  kStepScalarCount = 10,
};

// Host: the per-step slots of an AdamW update with hyper-parameters `p` at p.lr, step p.step
// (the loss and norm slots are zeroed, the computed ones cleared). `s` has kStepScalarCount.
void fill_adamw_scalars(double* s, const AdamWParams& p);

// s[kLoss] += scale * mse_forward(pred, target).
void mse_forward_acc(const Tensor& s, const Tensor& pred, const Tensor& target, double scale);
// s[kGradSumSq] += sum_squares(x).
void sum_squares_acc(const Tensor& s, const Tensor& x);
// s[kClipCoef] = max_norm > 0 ? clip_coefficient(sqrt(s[kGradSumSq]), max_norm) : 1;
// s[kSkip] = loss or norm not finite.
void step_control(const Tensor& s, double max_norm);
// adamw_step with lr, step (bias corrections), decay and grad_scale from `s`; nothing when
// s[kSkip] is set. p gives beta1, beta2 and eps.
void adamw_step_scalars(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const AdamWParams& p, const Tensor& s);
// ema_update, unless s[kSkip] is set.
void ema_update_scalars(const Tensor& ema, const Tensor& param, double decay, const Tensor& s);

namespace cpu {
void mse_forward_acc(const Tensor& s, const Tensor& pred, const Tensor& target, double scale);
void sum_squares_acc(const Tensor& s, const Tensor& x);
void step_control(const Tensor& s, double max_norm);
void adamw_step_scalars(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const AdamWParams& p, const Tensor& s);
void ema_update_scalars(const Tensor& ema, const Tensor& param, double decay, const Tensor& s);
}  // namespace cpu
namespace cuda {
void mse_forward_acc(const Tensor& s, const Tensor& pred, const Tensor& target, double scale);
void sum_squares_acc(const Tensor& s, const Tensor& x);
void step_control(const Tensor& s, double max_norm);
void adamw_step_scalars(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const AdamWParams& p, const Tensor& s);
void ema_update_scalars(const Tensor& ema, const Tensor& param, double decay, const Tensor& s);
}  // namespace cuda

}  // namespace rae::ops
