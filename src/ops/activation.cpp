// Dispatch and argument checks for the pointwise activations.
#include "ops/activation.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
// out and x: same shape, dtype and device, row-strided.
void check_unary(const char* op, const Tensor& out, const char* out_name, const Tensor& x,
                 const char* x_name) {
  check::is_float(x, op, x_name);
  check::rows(x, op, x_name);
  check::like(out, x, op, out_name);
  check::shape(out, x.shape(), op, out_name);
  check::rows(out, op, out_name);
}
}  // namespace

void gelu_forward(const Tensor& out, const Tensor& x, GeluKind kind) {
  check_unary("gelu_forward", out, "out", x, "x");
  RAE_DISPATCH(x, gelu_forward, out, x, kind);
}

void gelu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, GeluKind kind) {
  check_unary("gelu_backward", dout, "dout", x, "x");
  if (!dx.defined()) return;
  check_unary("gelu_backward", dx, "dx", x, "x");
  RAE_DISPATCH(x, gelu_backward, dx, dout, x, kind);
}

void silu_forward(const Tensor& out, const Tensor& x) {
  check_unary("silu_forward", out, "out", x, "x");
  RAE_DISPATCH(x, silu_forward, out, x);
}

void silu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x) {
  check_unary("silu_backward", dout, "dout", x, "x");
  if (!dx.defined()) return;
  check_unary("silu_backward", dx, "dx", x, "x");
  RAE_DISPATCH(x, silu_backward, dx, dout, x);
}

namespace {
void check_swiglu(const char* op, const Tensor& out, const char* out_name, const Tensor& x12) {
  check::is_float(x12, op, "x12");
  check::rows(x12, op, "x12");
  RAE_CHECK(check::cols(x12) % 2 == 0, op, ": argument 'x12' ", x12.shape().str(),
            " must have an even last dim ([x1 | x2])");
  check::like(out, x12, op, out_name);
  check::rows(out, op, out_name);
  Shape expect = x12.shape();
  expect[-1] = check::cols(x12) / 2;
  check::shape(out, expect, op, out_name);
}
}  // namespace

void swiglu_forward(const Tensor& out, const Tensor& x12) {
  check_swiglu("swiglu_forward", out, "out", x12);
  RAE_DISPATCH(x12, swiglu_forward, out, x12);
}

void swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12, GradMode mode) {
  check_swiglu("swiglu_backward", dout, "dout", x12);
  if (!dx12.defined()) return;
  check::like(dx12, x12, "swiglu_backward", "dx12");
  check::shape(dx12, x12.shape(), "swiglu_backward", "dx12");
  check::rows(dx12, "swiglu_backward", "dx12");
  RAE_DISPATCH(x12, swiglu_backward, dx12, dout, x12, mode);
}

}  // namespace rae::ops
