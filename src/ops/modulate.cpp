// Dispatch and argument checks for adaLN modulation and gated residuals.
#include "ops/modulate.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
void check_x3(const char* op, const Tensor& x, const char* name) {
  check::is_float(x, op, name);
  check::ndim(x, 3, op, name);
  check::rows(x, op, name);
}
void check_like_x(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::rows(t, op, name);
}
}  // namespace

void modulate_forward(const Tensor& out, const Tensor& x, const Tensor& shift,
                      const Tensor& scale) {
  const char* op = "modulate_forward";
  check_x3(op, x, "x");
  check_like_x(op, out, "out", x);
  check::cond(scale, x, op, "scale");
  if (shift.defined()) check::cond(shift, x, op, "shift");
  RAE_DISPATCH(x, modulate_forward, out, x, shift, scale);
}

void modulate_backward(const Tensor& dx, const Tensor& dshift, const Tensor& dscale,
                       const Tensor& dout, const Tensor& x, const Tensor& scale) {
  const char* op = "modulate_backward";
  check_x3(op, x, "x");
  check_like_x(op, dout, "dout", x);
  check::cond(scale, x, op, "scale");
  if (dx.defined()) check_like_x(op, dx, "dx", x);
  if (dshift.defined()) check::cond(dshift, x, op, "dshift");
  if (dscale.defined()) check::cond(dscale, x, op, "dscale");
  RAE_DISPATCH(x, modulate_backward, dx, dshift, dscale, dout, x, scale);
}

void gate_residual_forward(const Tensor& x, const Tensor& y, const Tensor& gate) {
  const char* op = "gate_residual_forward";
  check_x3(op, x, "x");
  check_like_x(op, y, "y", x);
  check::cond(gate, x, op, "gate");
  RAE_DISPATCH(x, gate_residual_forward, x, y, gate);
}

void gate_residual_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres,
                            const Tensor& y, const Tensor& gate, GradMode mode) {
  const char* op = "gate_residual_backward";
  check_x3(op, y, "y");
  check_like_x(op, dres, "dres", y);
  check::cond(gate, y, op, "gate");
  if (dy.defined()) check_like_x(op, dy, "dy", y);
  if (dgate.defined()) check::cond(dgate, y, op, "dgate");
  RAE_DISPATCH(y, gate_residual_backward, dy, dgate, dres, y, gate, mode);
}

}  // namespace rae::ops
