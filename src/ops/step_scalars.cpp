// Dispatch and argument checks of the step-scalar ops.
#include "ops/step_scalars.h"

#include <cmath>

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
void check_scalars(const Tensor& s, const Tensor& like, const char* op) {
  check::defined(s, op, "s");
  RAE_CHECK(s.dtype() == DType::F64 && s.numel() == kStepScalarCount && s.is_contiguous(), op,
            ": argument 's' must be (", static_cast<int>(kStepScalarCount), ") f64, got ", s.str());
  RAE_CHECK(!like.defined() || like.device() == s.device(), op, ": 's' on ", s.device().str(),
            ", tensors on ", like.device().str());
}
}  // namespace

void fill_adamw_scalars(double* s, const AdamWParams& p) {
  for (int i = 0; i < kStepScalarCount; ++i) s[i] = 0;
  // The doubles the eager adamw_step computes from the same parameters.
  s[kLr] = p.lr;
  s[kAdamStep] = static_cast<double>(p.step);
  s[kBiasCorr1] = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  s[kBc2SqrtInv] = 1.0 / std::sqrt(1.0 - std::pow(p.beta2, static_cast<double>(p.step)));
  s[kDecayFactor] = 1.0 - p.lr * p.weight_decay;
  s[kClipCoef] = 1.0;
}

void mse_forward_acc(const Tensor& s, const Tensor& pred, const Tensor& target, double scale) {
  const char* op = "mse_forward_acc";
  check_scalars(s, pred, op);
  check::is_float(pred, op, "pred");
  check::like(target, pred, op, "target");
  check::shape(target, pred.shape(), op, "target");
  RAE_DISPATCH(pred, mse_forward_acc, s, pred, target, scale);
}

void sum_squares_acc(const Tensor& s, const Tensor& x) {
  const char* op = "sum_squares_acc";
  check_scalars(s, x, op);
  check::is_float(x, op, "x");
  RAE_DISPATCH(x, sum_squares_acc, s, x);
}

void step_control(const Tensor& s, double max_norm) {
  check_scalars(s, Tensor(), "step_control");
  RAE_DISPATCH(s, step_control, s, max_norm);
}

void adamw_step_scalars(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const AdamWParams& p, const Tensor& s) {
  const char* op = "adamw_step_scalars";
  check_scalars(s, param, op);
  check::adamw_buffers(op, param, grad, m, v);
  RAE_DISPATCH(param, adamw_step_scalars, param, grad, m, v, p, s);
}

void ema_update_scalars(const Tensor& ema, const Tensor& param, double decay, const Tensor& s) {
  const char* op = "ema_update_scalars";
  check_scalars(s, ema, op);
  check::like(param, ema, op, "param");
  check::shape(param, ema.shape(), op, "param");
  check::contiguous(ema, op, "ema");
  check::contiguous(param, op, "param");
  RAE_DISPATCH(ema, ema_update_scalars, ema, param, decay, s);
}

}  // namespace rae::ops
