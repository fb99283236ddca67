// Dispatch and argument checks for DiffAug.
#include "ops/diffaug.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {

void check_image(const char* op, const Tensor& t, const char* name, const Tensor* ref) {
  check::is_float(t, op, name);
  check::ndim(t, 4, op, name);
  check::contiguous(t, op, name);
  if (ref) {
    check::like(t, *ref, op, name);
    check::shape(t, ref->shape(), op, name);
  }
}
void check_params(const char* op, const Tensor& p, const char* name, const Tensor& x, DType dt,
                  int64_t k) {
  check::defined(p, op, name);
  check::dtype(p, dt, op, name);
  check::same_device(p, x, op, name);
  check::contiguous(p, op, name);
  check::shape(p, {x.dim(0), k}, op, name);
}

}  // namespace

void diffaug_translate_forward(const Tensor& out, const Tensor& x, const Tensor& shifts) {
  const char* op = "diffaug_translate_forward";
  check_image(op, x, "x", nullptr);
  check_image(op, out, "out", &x);
  check_params(op, shifts, "shifts", x, DType::I32, 2);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, diffaug_translate_forward, out, x, shifts);
}

void diffaug_translate_backward(const Tensor& dx, const Tensor& dout, const Tensor& shifts) {
  const char* op = "diffaug_translate_backward";
  check_image(op, dout, "dout", nullptr);
  check_params(op, shifts, "shifts", dout, DType::I32, 2);
  if (!dx.defined() || dout.numel() == 0) return;
  check_image(op, dx, "dx", &dout);
  RAE_DISPATCH(dout, diffaug_translate_backward, dx, dout, shifts);
}

void diffaug_color_forward(const Tensor& out, const Tensor& x, const Tensor& factors) {
  const char* op = "diffaug_color_forward";
  check_image(op, x, "x", nullptr);
  check_image(op, out, "out", &x);
  check_params(op, factors, "factors", x, DType::F32, 3);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, diffaug_color_forward, out, x, factors);
}

void diffaug_color_backward(const Tensor& dx, const Tensor& dout, const Tensor& factors) {
  const char* op = "diffaug_color_backward";
  check_image(op, dout, "dout", nullptr);
  check_params(op, factors, "factors", dout, DType::F32, 3);
  if (!dx.defined() || dout.numel() == 0) return;
  check_image(op, dx, "dx", &dout);
  RAE_DISPATCH(dout, diffaug_color_backward, dx, dout, factors);
}

void diffaug_cutout_forward(const Tensor& out, const Tensor& x, const Tensor& boxes) {
  const char* op = "diffaug_cutout_forward";
  check_image(op, x, "x", nullptr);
  check_image(op, out, "out", &x);
  check_params(op, boxes, "boxes", x, DType::I32, 4);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, diffaug_cutout, out, x, boxes, false);
}

void diffaug_cutout_backward(const Tensor& dx, const Tensor& dout, const Tensor& boxes) {
  const char* op = "diffaug_cutout_backward";
  check_image(op, dout, "dout", nullptr);
  check_params(op, boxes, "boxes", dout, DType::I32, 4);
  if (!dx.defined() || dout.numel() == 0) return;
  check_image(op, dx, "dx", &dout);
  RAE_DISPATCH(dout, diffaug_cutout, dx, dout, boxes, true);
}

}  // namespace rae::ops
