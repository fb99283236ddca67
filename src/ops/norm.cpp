// Dispatch and argument checks for LayerNorm, RMSNorm and the fused RMSNorm + adaLN modulation.
#include "ops/norm.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
void check_x(const char* op, const Tensor& x) {
  check::is_float(x, op, "x");
  check::rows(x, op, "x");
}
void check_like_x(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::rows(t, op, name);
}
// Optional per-channel parameter (C).
void check_param(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  if (!t.defined()) return;
  check::like(t, x, op, name);
  check::shape(t, {check::cols(x)}, op, name);
  check::contiguous(t, op, name);
}
void check_x3(const char* op, const Tensor& x) {
  check_x(op, x);
  check::ndim(x, 3, op, "x");
}
}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps) {
  const char* op = "layernorm_forward";
  check_x(op, x);
  check_like_x(op, out, "out", x);
  check::stat(mean, x, check::nrows(x), op, "mean");
  check::stat(rstd, x, check::nrows(x), op, "rstd");
  check_param(op, w, "w", x);
  check_param(op, b, "b", x);
  RAE_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  RAE_DISPATCH(x, layernorm_forward, out, mean, rstd, x, w, b, eps);
}

void layernorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd) {
  const char* op = "layernorm_backward";
  check_x(op, x);
  check_like_x(op, dout, "dout", x);
  check::stat(mean, x, check::nrows(x), op, "mean");
  check::stat(rstd, x, check::nrows(x), op, "rstd");
  check_param(op, w, "w", x);
  if (dx.defined()) check_like_x(op, dx, "dx", x);
  check_param(op, dw, "dw", x);
  check_param(op, db, "db", x);
  RAE_CHECK(!dw.defined() || w.defined(), op, ": 'dw' given but the norm has no weight 'w'");
  RAE_DISPATCH(x, layernorm_backward, dx, dw, db, dout, x, w, mean, rstd);
}

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                     double eps) {
  const char* op = "rmsnorm_forward";
  check_x(op, x);
  check_like_x(op, out, "out", x);
  check::stat(rstd, x, check::nrows(x), op, "rstd");
  check_param(op, w, "w", x);
  RAE_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  RAE_DISPATCH(x, rmsnorm_forward, out, rstd, x, w, eps);
}

void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                      const Tensor& w, const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  check_x(op, x);
  check_like_x(op, dout, "dout", x);
  check::stat(rstd, x, check::nrows(x), op, "rstd");
  check_param(op, w, "w", x);
  if (dx.defined()) check_like_x(op, dx, "dx", x);
  check_param(op, dw, "dw", x);
  RAE_CHECK(!dw.defined() || w.defined(), op, ": 'dw' given but the norm has no weight 'w'");
  RAE_DISPATCH(x, rmsnorm_backward, dx, dw, dout, x, w, rstd);
}

void rmsnorm_modulate_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& w, const Tensor& shift, const Tensor& scale,
                              double eps) {
  const char* op = "rmsnorm_modulate_forward";
  check_x3(op, x);
  check_like_x(op, out, "out", x);
  check::stat(rstd, x, check::nrows(x), op, "rstd");
  check_param(op, w, "w", x);
  check::cond(scale, x, op, "scale");
  if (shift.defined()) check::cond(shift, x, op, "shift");
  RAE_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  RAE_DISPATCH(x, rmsnorm_modulate_forward, out, rstd, x, w, shift, scale, eps);
}

void rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                               const Tensor& dscale, const Tensor& dout, const Tensor& x,
                               const Tensor& w, const Tensor& scale, const Tensor& rstd,
                               GradMode mode) {
  const char* op = "rmsnorm_modulate_backward";
  check_x3(op, x);
  check_like_x(op, dout, "dout", x);
  check::stat(rstd, x, check::nrows(x), op, "rstd");
  check_param(op, w, "w", x);
  check::cond(scale, x, op, "scale");
  if (dx.defined()) check_like_x(op, dx, "dx", x);
  check_param(op, dw, "dw", x);
  RAE_CHECK(!dw.defined() || w.defined(), op, ": 'dw' given but the norm has no weight 'w'");
  if (dshift.defined()) check::cond(dshift, x, op, "dshift");
  if (dscale.defined()) {
    check::cond(dscale, x, op, "dscale");
    RAE_CHECK(dscale.ndim() == scale.ndim(), op, ": 'dscale' ", dscale.shape().str(),
              " and 'scale' ", scale.shape().str(), " differ");
  }
  RAE_DISPATCH(x, rmsnorm_modulate_backward, dx, dw, dshift, dscale, dout, x, w, scale, rstd,
               mode);
}

}  // namespace rae::ops
