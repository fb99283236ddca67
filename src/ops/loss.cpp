// Dispatch and argument checks for the stage-1 losses.
#include "ops/loss.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {

void check_input(const char* op, const Tensor& x, const char* name) {
  check::is_float(x, op, name);
  check::contiguous(x, op, name);
  RAE_CHECK(x.numel() > 0, op, ": argument '", name, "' is empty");
}
void check_same(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::contiguous(t, op, name);
}
void check_sign(const char* op, double sign) {
  RAE_CHECK(sign == 1.0 || sign == -1.0, op, ": sign must be +1 or -1, got ", sign);
}
// fx, fy (..., C) feature rows; w (C) (a (1, C, 1, 1) lin weight viewed flat is fine).
void check_lpips(const char* op, const Tensor& fx, const Tensor& fy, const Tensor& w, double eps) {
  check_input(op, fx, "fx");
  check_same(op, fy, "fy", fx);
  check::like(w, fx, op, "w");
  check::contiguous(w, op, "w");
  RAE_CHECK(w.numel() == check::cols(fx), op, ": argument 'w' has ", w.numel(),
            " elements, expected the ", check::cols(fx), " channels of fx ", fx.str());
  RAE_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
}

}  // namespace

double l1_forward(const Tensor& pred, const Tensor& target) {
  const char* op = "l1_forward";
  check_input(op, pred, "pred");
  check_same(op, target, "target", pred);
  return RAE_DISPATCH(pred, l1_forward, pred, target);
}

void l1_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale) {
  const char* op = "l1_backward";
  check_input(op, pred, "pred");
  check_same(op, target, "target", pred);
  if (!dpred.defined()) return;
  check_same(op, dpred, "dpred", pred);
  RAE_DISPATCH(pred, l1_backward, dpred, pred, target, scale);
}

double hinge_forward(const Tensor& x, double sign) {
  check_input("hinge_forward", x, "x");
  check_sign("hinge_forward", sign);
  return RAE_DISPATCH(x, hinge_forward, x, sign);
}

void hinge_backward(const Tensor& dx, const Tensor& x, double sign, double scale) {
  check_input("hinge_backward", x, "x");
  check_sign("hinge_backward", sign);
  if (!dx.defined()) return;
  check_same("hinge_backward", dx, "dx", x);
  RAE_DISPATCH(x, hinge_backward, dx, x, sign, scale);
}

double mean_forward(const Tensor& x) {
  check_input("mean_forward", x, "x");
  return RAE_DISPATCH(x, mean_forward, x);
}

void mean_backward(const Tensor& dx, double scale) {
  if (!dx.defined()) return;
  check_input("mean_backward", dx, "dx");
  RAE_DISPATCH(dx, mean_backward, dx, scale);
}

int64_t count_greater(const Tensor& a, const Tensor& b) {
  check_input("count_greater", a, "a");
  check_same("count_greater", b, "b", a);
  return RAE_DISPATCH(a, count_greater, a, b);
}

double lpips_distance_forward(const Tensor& fx, const Tensor& fy, const Tensor& w, double eps) {
  check_lpips("lpips_distance_forward", fx, fy, w, eps);
  return RAE_DISPATCH(fx, lpips_distance_forward, fx, fy, w, eps);
}

void lpips_distance_backward(const Tensor& dfx, const Tensor& fx, const Tensor& fy, const Tensor& w,
                             double eps, double scale) {
  const char* op = "lpips_distance_backward";
  check_lpips(op, fx, fy, w, eps);
  if (!dfx.defined()) return;
  check_same(op, dfx, "dfx", fx);
  RAE_DISPATCH(fx, lpips_distance_backward, dfx, fx, fy, w, eps, scale);
}

}  // namespace rae::ops
