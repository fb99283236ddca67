// Dispatch and argument checks for circular padding.
#include "ops/pad.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {

// x (N, L, C) and the padded (N, L + 2 pad, C).
void check_pair(const char* op, const Tensor& x, const char* xn, const Tensor& out, const char* on,
                int64_t pad) {
  check::is_float(x, op, xn);
  check::ndim(x, 3, op, xn);
  check::contiguous(x, op, xn);
  check::like(out, x, op, on);
  check::contiguous(out, op, on);
  RAE_CHECK(pad >= 0 && pad <= x.dim(1), op, ": pad ", pad, " must be in [0, L = ", x.dim(1),
            "] (circular padding wraps once)");
  check::shape(out, {x.dim(0), x.dim(1) + 2 * pad, x.dim(2)}, op, on);
}

}  // namespace

void pad_circular1d_forward(const Tensor& out, const Tensor& x, int64_t pad) {
  check_pair("pad_circular1d_forward", x, "x", out, "out", pad);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, pad_circular1d_forward, out, x, pad);
}

void pad_circular1d_backward(const Tensor& dx, const Tensor& dout, int64_t pad) {
  if (!dx.defined()) return;
  check_pair("pad_circular1d_backward", dx, "dx", dout, "dout", pad);
  if (dx.numel() == 0) return;
  RAE_DISPATCH(dx, pad_circular1d_backward, dx, dout, pad);
}

}  // namespace rae::ops
