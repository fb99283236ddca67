// DiffAug, the discriminator's differentiable augmentation as the RAE release applies it
// (src/disc/diffaug.py, from StyleGAN-T): translation, colour, cutout, in that order, on NHWC
// images, with per-sample parameters drawn by the caller (models/diffaug.h turns the release's
// seven uniforms per sample into them). Every op has a backward that ACCUMULATES into dx; the
// parameter tensors get no gradient.
//
// diffaug_translate: shifts (B, 2) I32 (dy, dx): out[b, h, w] = x[b, h + dy, w + dx] where that
//                    pixel exists, else 0 (the release indexes a zero-padded copy with clamped
//                    coordinates, which lands on the padding exactly when the pixel is outside).
// diffaug_color:     factors (B, 3) F32 (a, s, k): brightness y1 = x + a; saturation
//                    y2 = (y1 - m1) s + m1 with m1 the mean over channels of each pixel; contrast
//                    y3 = (y2 - m2) k + m2 with m2 the mean of y2 over (H, W, C) of the sample.
//                    Backward: dy2 = k dy3 + (1 - k) mean(dy3), dy1 = s dy2 + (1 - s) mean_c(dy2).
// diffaug_cutout:    boxes (B, 4) I32 (y0, y1, x0, x1): out = x with rows [y0, y1) x columns
//                    [x0, x1) set to 0 (an empty box leaves the image as it is).
// x, out, dx, dout: contiguous (B, H, W, C), one dtype; per-sample sums in double.
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

void diffaug_translate_forward(const Tensor& out, const Tensor& x, const Tensor& shifts);
void diffaug_translate_backward(const Tensor& dx, const Tensor& dout, const Tensor& shifts);
void diffaug_color_forward(const Tensor& out, const Tensor& x, const Tensor& factors);
void diffaug_color_backward(const Tensor& dx, const Tensor& dout, const Tensor& factors);
void diffaug_cutout_forward(const Tensor& out, const Tensor& x, const Tensor& boxes);
void diffaug_cutout_backward(const Tensor& dx, const Tensor& dout, const Tensor& boxes);

namespace cpu {
void diffaug_translate_forward(const Tensor& out, const Tensor& x, const Tensor& shifts);
void diffaug_translate_backward(const Tensor& dx, const Tensor& dout, const Tensor& shifts);
void diffaug_color_forward(const Tensor& out, const Tensor& x, const Tensor& factors);
void diffaug_color_backward(const Tensor& dx, const Tensor& dout, const Tensor& factors);
void diffaug_cutout(const Tensor& out, const Tensor& x, const Tensor& boxes, bool accumulate);
}  // namespace cpu
namespace cuda {
void diffaug_translate_forward(const Tensor& out, const Tensor& x, const Tensor& shifts);
void diffaug_translate_backward(const Tensor& dx, const Tensor& dout, const Tensor& shifts);
void diffaug_color_forward(const Tensor& out, const Tensor& x, const Tensor& factors);
void diffaug_color_backward(const Tensor& dx, const Tensor& dout, const Tensor& factors);
void diffaug_cutout(const Tensor& out, const Tensor& x, const Tensor& boxes, bool accumulate);
}  // namespace cuda

}  // namespace rae::ops
