// CPU step-scalar ops: the eager ops' arithmetic on a host F64 scalar tensor.
#include "ops/step_scalars.h"

#include <cmath>

#include "ops/elementwise.h"

namespace rae::ops::cpu {

void mse_forward_acc(const Tensor& s, const Tensor& pred, const Tensor& target, double scale) {
  s.data<double>()[kLoss] += scale * cpu::mse_forward(pred, target);
}

void sum_squares_acc(const Tensor& s, const Tensor& x) {
  s.data<double>()[kGradSumSq] += cpu::sum_squares(x);
}

void step_control(const Tensor& s, double max_norm) {
  double* v = s.data<double>();
  const double norm = std::sqrt(v[kGradSumSq]);
  v[kClipCoef] = max_norm > 0 ? clip_coefficient(norm, max_norm) : 1.0;
  v[kSkip] = std::isfinite(v[kLoss]) && std::isfinite(norm) ? 0.0 : 1.0;
}

void adamw_step_scalars(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const AdamWParams& p, const Tensor& s) {
  const double* sv = s.data<double>();
  if (sv[kSkip] != 0) return;
  AdamWParams q = p;
  q.lr = sv[kLr];
  q.step = static_cast<int64_t>(sv[kAdamStep]);
  q.grad_scale = sv[kClipCoef];
  cpu::adamw_step(param, grad, m, v, q);
}

void ema_update_scalars(const Tensor& ema, const Tensor& param, double decay, const Tensor& s) {
  if (s.data<double>()[kSkip] != 0) return;
  cpu::ema_update(ema, param, decay);
}

}  // namespace rae::ops::cpu
