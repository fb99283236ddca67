// Dispatch and argument checks for elementwise ops, reductions, MSE and the flow interpolation.
#include "ops/elementwise.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
// `t` has x's dtype, device and shape and is row-strided.
void check_same(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::rows(t, op, name);
}
void check_first(const char* op, const Tensor& x, const char* name) {
  check::is_float(x, op, name);
  check::rows(x, op, name);
}
// A broadcast row (C) or row table (R, C) for x seen as (N, C), N % R == 0.
void check_row_table(const char* op, const Tensor& row, const char* name, const Tensor& x) {
  check::like(row, x, op, name);
  check::contiguous(row, op, name);
  const int64_t C = check::cols(x), N = check::nrows(x);
  RAE_CHECK((row.ndim() == 1 && row.dim(0) == C) ||
                (row.ndim() == 2 && row.dim(1) == C && row.dim(0) > 0 && N % row.dim(0) == 0),
            op, ": argument '", name, "' has shape ", row.shape().str(), ", expected (", C,
            ") or (R, ", C, ") with R dividing the ", N, " rows of ", x.shape().str());
}
}  // namespace

void add_(const Tensor& y, const Tensor& x, double alpha) {
  check_first("add_", y, "y");
  check_same("add_", x, "x", y);
  RAE_DISPATCH(y, add_, y, x, alpha);
}

void scale_(const Tensor& x, double alpha) {
  check_first("scale_", x, "x");
  RAE_DISPATCH(x, scale_, x, alpha);
}

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  check_first("add", a, "a");
  check_same("add", b, "b", a);
  check_same("add", out, "out", a);
  RAE_DISPATCH(a, add, out, a, b);
}

void add_rowwise(const Tensor& out, const Tensor& x, const Tensor& row) {
  const char* op = "add_rowwise";
  check_first(op, x, "x");
  check_same(op, out, "out", x);
  check_row_table(op, row, "row", x);
  RAE_DISPATCH(x, add_rowwise, out, x, row);
}

void add_rowwise_backward(const Tensor& drow, const Tensor& dout) {
  const char* op = "add_rowwise_backward";
  check_first(op, dout, "dout");
  if (!drow.defined()) return;
  check_row_table(op, drow, "drow", dout);
  RAE_DISPATCH(dout, add_rowwise_backward, drow, dout);
}

double sum_squares(const Tensor& x) {
  check_first("sum_squares", x, "x");
  return RAE_DISPATCH(x, sum_squares, x);
}

bool all_finite(const Tensor& x) {
  check_first("all_finite", x, "x");
  return RAE_DISPATCH(x, all_finite, x);
}

double mse_forward(const Tensor& pred, const Tensor& target) {
  check_first("mse_forward", pred, "pred");
  check_same("mse_forward", target, "target", pred);
  RAE_CHECK(pred.numel() > 0, "mse_forward: empty tensors");
  return RAE_DISPATCH(pred, mse_forward, pred, target);
}

void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale) {
  check_first("mse_backward", pred, "pred");
  check_same("mse_backward", target, "target", pred);
  if (!dpred.defined()) return;
  check_same("mse_backward", dpred, "dpred", pred);
  RAE_DISPATCH(pred, mse_backward, dpred, pred, target, scale);
}

void flow_interpolate(const Tensor& xt, const Tensor& target, const Tensor& x, const Tensor& eps,
                      const Tensor& t) {
  const char* op = "flow_interpolate";
  check::is_float(x, op, "x");
  RAE_CHECK(x.ndim() >= 1, op, ": argument 'x' must have a batch dim, got ", x.shape().str());
  check::contiguous(x, op, "x");
  for (auto [tensor, name] :
       {std::pair<const Tensor&, const char*>{eps, "eps"}, {xt, "xt"}, {target, "target"}}) {
    check::like(tensor, x, op, name);
    check::shape(tensor, x.shape(), op, name);
    check::contiguous(tensor, op, name);
  }
  check::same_device(t, x, op, "t");
  check::shape(t, {x.dim(0)}, op, "t");
  check::contiguous(t, op, "t");
  RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == x.dtype(), op,
            ": argument 't' must be f32 (or x's dtype), got ", dtype_name(t.dtype()));
  RAE_DISPATCH(x, flow_interpolate, xt, target, x, eps, t);
}

}  // namespace rae::ops
