// Dispatch and argument checks for 2-D pooling (channels last).
#include "ops/pool.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

Shape pool2d_out_shape(const Shape& x, const Pool2dParams& p, const char* op) {
  RAE_CHECK(x.size() == 4, op, ": x must be (N, H, W, C), got ", x.str());
  RAE_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1, op,
            ": kernel (", p.kernel_h, ", ", p.kernel_w, ") and stride (", p.stride_h, ", ",
            p.stride_w, ") must be >= 1");
  RAE_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
            op, ": padding (", p.pad_h, ", ", p.pad_w,
            ") must be >= 0 and at most half the kernel (", p.kernel_h, ", ", p.kernel_w, ")");
  const int64_t sh = x[1] + 2 * p.pad_h - p.kernel_h, sw = x[2] + 2 * p.pad_w - p.kernel_w;
  RAE_CHECK(sh >= 0 && sw >= 0, op, ": the window (", p.kernel_h, ", ", p.kernel_w,
            ") is larger than the padded input of x ", x.str());
  return {x[0], sh / p.stride_h + 1, sw / p.stride_w + 1, x[3]};
}

namespace {

void check_x(const char* op, const Tensor& x, const char* name) {
  check::is_float(x, op, name);
  check::ndim(x, 4, op, name);
  check::rows(x, op, name);
}
void check_like(const char* op, const Tensor& t, const char* name, const Tensor& ref,
                const Shape& shape) {
  check::like(t, ref, op, name);
  check::shape(t, shape, op, name);
  check::rows(t, op, name);
}
PoolGeometry geometry(const Shape& x, const Shape& out, const Pool2dParams& p) {
  PoolGeometry g;
  g.N = x[0];
  g.H = x[1];
  g.W = x[2];
  g.C = x[3];
  g.OH = out[1];
  g.OW = out[2];
  g.p = p;
  return g;
}

}  // namespace

void max_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) {
  const char* op = "max_pool2d_forward";
  check_x(op, x, "x");
  Shape os = pool2d_out_shape(x.shape(), p, op);
  check_like(op, out, "out", x, os);
  if (out.numel() == 0) return;
  RAE_DISPATCH(x, max_pool2d_forward, out, x, geometry(x.shape(), os, p));
}

void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& x,
                         const Pool2dParams& p) {
  const char* op = "max_pool2d_backward";
  check_x(op, x, "x");
  Shape os = pool2d_out_shape(x.shape(), p, op);
  check_like(op, dout, "dout", x, os);
  if (!dx.defined()) return;
  check_like(op, dx, "dx", x, x.shape());
  if (dx.numel() == 0) return;
  RAE_DISPATCH(x, max_pool2d_backward, dx, dout, x, geometry(x.shape(), os, p));
}

void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) {
  const char* op = "avg_pool2d_forward";
  check_x(op, x, "x");
  Shape os = pool2d_out_shape(x.shape(), p, op);
  check_like(op, out, "out", x, os);
  if (out.numel() == 0) return;
  RAE_DISPATCH(x, avg_pool2d_forward, out, x, geometry(x.shape(), os, p));
}

void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const Pool2dParams& p) {
  const char* op = "avg_pool2d_backward";
  check_x(op, dout, "dout");
  if (!dx.defined()) return;
  check_x(op, dx, "dx");
  check::like(dx, dout, op, "dx");
  Shape os = pool2d_out_shape(dx.shape(), p, op);
  check::shape(dout, os, op, "dout");
  if (dx.numel() == 0) return;
  RAE_DISPATCH(dout, avg_pool2d_backward, dx, dout, geometry(dx.shape(), os, p));
}

void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x) {
  const char* op = "adaptive_avg_pool2d_forward";
  check_x(op, x, "x");
  check_x(op, out, "out");
  check::like(out, x, op, "out");
  RAE_CHECK(out.dim(0) == x.dim(0) && out.dim(3) == x.dim(3) && out.dim(1) >= 1 && out.dim(2) >= 1,
            op, ": argument 'out' ", out.shape().str(), " must be (", x.dim(0), ", OH, OW, ",
            x.dim(3), ") with OH, OW >= 1 for x ", x.shape().str());
  RAE_CHECK(x.dim(1) >= 1 && x.dim(2) >= 1, op, ": x ", x.shape().str(), " has no pixels");
  if (out.numel() == 0) return;
  RAE_DISPATCH(x, adaptive_avg_pool2d_forward, out, x,
               geometry(x.shape(), out.shape(), Pool2dParams{}));
}

void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout) {
  const char* op = "adaptive_avg_pool2d_backward";
  check_x(op, dout, "dout");
  if (!dx.defined()) return;
  check_x(op, dx, "dx");
  check::like(dx, dout, op, "dx");
  RAE_CHECK(dout.dim(0) == dx.dim(0) && dout.dim(3) == dx.dim(3) && dout.dim(1) >= 1 &&
                dout.dim(2) >= 1 && dx.dim(1) >= 1 && dx.dim(2) >= 1,
            op, ": argument 'dout' ", dout.shape().str(), " does not pool dx ", dx.shape().str());
  if (dx.numel() == 0) return;
  RAE_DISPATCH(dout, adaptive_avg_pool2d_backward, dx, dout,
               geometry(dx.shape(), dout.shape(), Pool2dParams{}));
}

}  // namespace rae::ops
