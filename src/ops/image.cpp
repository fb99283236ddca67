// Dispatch and argument checks for the pixel ops (channels last).
#include "ops/image.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {

void check_float_rows(const char* op, const Tensor& x, const char* name) {
  check::is_float(x, op, name);
  check::rows(x, op, name);
}
void check_same(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::rows(t, op, name);
}
void check_channels(const char* op, const Tensor& x, const std::vector<double>& v,
                    const char* name) {
  const int64_t C = check::cols(x);
  RAE_CHECK(C <= kMaxAffineChannels, op, ": at most ", kMaxAffineChannels, " channels, x is ",
            x.str());
  RAE_CHECK(static_cast<int64_t>(v.size()) == C, op, ": '", name, "' has ", v.size(),
            " values for the ", C, " channels of ", x.str());
}
void check_image(const char* op, const Tensor& t, const char* name) {
  check::is_float(t, op, name);
  check::ndim(t, 4, op, name);
  check::contiguous(t, op, name);
}

}  // namespace

void channel_affine_forward(const Tensor& out, const Tensor& x, const std::vector<double>& scale,
                            const std::vector<double>& shift) {
  const char* op = "channel_affine_forward";
  check_float_rows(op, x, "x");
  check_same(op, out, "out", x);
  check_channels(op, x, scale, "scale");
  check_channels(op, x, shift, "shift");
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, channel_affine_forward, out, x, scale, shift);
}

void channel_affine_backward(const Tensor& dx, const Tensor& dout,
                             const std::vector<double>& scale) {
  const char* op = "channel_affine_backward";
  check_float_rows(op, dout, "dout");
  if (!dx.defined() || dout.numel() == 0) return;
  check_same(op, dx, "dx", dout);
  check_channels(op, dout, scale, "scale");
  RAE_DISPATCH(dout, channel_affine_backward, dx, dout, scale);
}

void quantize_pm1(const Tensor& out, const Tensor& x) {
  const char* op = "quantize_pm1";
  check_float_rows(op, x, "x");
  check_same(op, out, "out", x);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, quantize_pm1, out, x);
}

void resize_bilinear_forward(const Tensor& out, const Tensor& x) {
  const char* op = "resize_bilinear_forward";
  check_image(op, x, "x");
  check_image(op, out, "out");
  check::like(out, x, op, "out");
  RAE_CHECK(out.dim(0) == x.dim(0) && out.dim(3) == x.dim(3) && out.dim(1) > 0 && out.dim(2) > 0,
            op, ": out ", out.str(), " must be (N, OH, OW, C) for x ", x.str());
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, resize_bilinear_forward, out, x);
}

void resize_bilinear_backward(const Tensor& dx, const Tensor& dout) {
  const char* op = "resize_bilinear_backward";
  check_image(op, dout, "dout");
  if (!dx.defined()) return;
  check_image(op, dx, "dx");
  check::like(dx, dout, op, "dx");
  RAE_CHECK(dx.dim(0) == dout.dim(0) && dx.dim(3) == dout.dim(3) && dx.dim(1) > 0 && dx.dim(2) > 0,
            op, ": dx ", dx.str(), " must be (N, H, W, C) for dout ", dout.str());
  if (dx.numel() == 0) return;
  RAE_DISPATCH(dout, resize_bilinear_backward, dx, dout);
}

}  // namespace rae::ops
