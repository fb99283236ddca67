// Dispatch and argument checks for ReLU and LeakyReLU.
#include "ops/relu.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
void check_pair(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::rows(t, op, name);
}
void check_x(const char* op, const Tensor& x) {
  check::is_float(x, op, "x");
  check::rows(x, op, "x");
}
}  // namespace

void relu_forward(const Tensor& out, const Tensor& x) {
  check_x("relu_forward", x);
  check_pair("relu_forward", out, "out", x);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, leaky_relu_forward, out, x, 0.0);
}

void relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x) {
  check_x("relu_backward", x);
  check_pair("relu_backward", dout, "dout", x);
  if (!dx.defined() || x.numel() == 0) return;
  check_pair("relu_backward", dx, "dx", x);
  RAE_DISPATCH(x, leaky_relu_backward, dx, dout, x, 0.0);
}

void leaky_relu_forward(const Tensor& out, const Tensor& x, double slope) {
  check_x("leaky_relu_forward", x);
  check_pair("leaky_relu_forward", out, "out", x);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, leaky_relu_forward, out, x, slope);
}

void leaky_relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double slope) {
  check_x("leaky_relu_backward", x);
  check_pair("leaky_relu_backward", dout, "dout", x);
  if (!dx.defined() || x.numel() == 0) return;
  check_pair("leaky_relu_backward", dx, "dx", x);
  RAE_DISPATCH(x, leaky_relu_backward, dx, dout, x, slope);
}

}  // namespace rae::ops
