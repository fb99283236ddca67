// Optimizer kernels over flat F32 buffers (master weights, grads, moments): AdamW with decoupled
// weight decay, EMA, and gradient clipping helpers.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace rae::ops {

struct AdamWParams {
  double lr = 2e-4, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;          // 1-based, for bias correction
  double grad_scale = 1.0;   // grads are multiplied by this first (clipping, accumulation)
};
// param, grad, m, v: same shape, F32 (F64 allowed on CPU). PyTorch AdamW semantics:
// p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p);

// ema = decay * ema + (1 - decay) * param.
void ema_update(const Tensor& ema, const Tensor& param, double decay);

// Clip factor for a global norm: min(1, max_norm / (norm + 1e-6)); the norm itself comes from
// sum_squares over all gradient buffers (and ranks).
double clip_coefficient(double global_norm, double max_norm);

namespace cpu {
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p);
void ema_update(const Tensor& ema, const Tensor& param, double decay);
}  // namespace cpu
namespace cuda {
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p);
void ema_update(const Tensor& ema, const Tensor& param, double decay);
}  // namespace cuda

}  // namespace rae::ops
