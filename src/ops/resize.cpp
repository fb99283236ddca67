// Dispatch and argument checks for the TF1-compatible bilinear resize.
#include "ops/resize.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

void resize_bilinear_tf1(const Tensor& out, const Tensor& x, double sub, double div) {
  const char* op = "resize_bilinear_tf1";
  check::is_float(out, op, "out");
  check::defined(x, op, "x");
  check::same_device(x, out, op, "x");
  RAE_CHECK(x.dtype() == DType::U8 || x.dtype() == out.dtype(), op, ": argument 'x' has dtype ",
            dtype_name(x.dtype()), ", expected u8 or the output's ", dtype_name(out.dtype()));
  check::ndim(x, 4, op, "x");
  check::ndim(out, 4, op, "out");
  check::contiguous(x, op, "x");
  check::contiguous(out, op, "out");
  RAE_CHECK(out.dim(0) == x.dim(0) && out.dim(3) == x.dim(3), op, ": argument 'out' ",
            out.shape().str(), " must have x's batch and channels, x is ", x.shape().str(),
            " (layout (N, H, W, C))");
  RAE_CHECK(x.dim(1) >= 1 && x.dim(2) >= 1 && out.dim(1) >= 1 && out.dim(2) >= 1, op,
            ": empty image: x ", x.shape().str(), ", out ", out.shape().str());
  RAE_CHECK(div != 0, op, ": div must be non-zero");
  if (out.numel() == 0) return;
  RAE_DISPATCH(out, resize_bilinear_tf1, out, x, sub, div);
}

}  // namespace rae::ops
