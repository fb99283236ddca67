// Dispatch and argument checks for the optimizer kernels.
#include "ops/optim.h"

#include <algorithm>
#include <cmath>

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p) {
  const char* op = "adamw_step";
  check::adamw_buffers(op, param, grad, m, v);
  RAE_CHECK(p.step >= 1, op, ": step is 1-based, got ", p.step);
  RAE_CHECK(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1, op,
            ": betas must lie in [0, 1), got (", p.beta1, ", ", p.beta2, ")");
  RAE_CHECK(p.lr >= 0 && p.eps >= 0 && p.weight_decay >= 0, op,
            ": lr, eps and weight_decay must be >= 0");
  RAE_DISPATCH(param, adamw_step, param, grad, m, v, p);
}

void ema_update(const Tensor& ema, const Tensor& param, double decay) {
  const char* op = "ema_update";
  check::is_float(ema, op, "ema");
  check::contiguous(ema, op, "ema");
  check::like(param, ema, op, "param");
  check::shape(param, ema.shape(), op, "param");
  check::contiguous(param, op, "param");
  RAE_CHECK(decay >= 0 && decay <= 1, op, ": decay must lie in [0, 1], got ", decay);
  RAE_DISPATCH(ema, ema_update, ema, param, decay);
}

double clip_coefficient(double global_norm, double max_norm) {
  RAE_CHECK(max_norm > 0, "clip_coefficient: max_norm must be positive, got ", max_norm);
  return std::min(1.0, max_norm / (global_norm + 1e-6));
}

}  // namespace rae::ops
