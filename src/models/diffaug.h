// DiffAug as the RAE release's discriminator applies it (src/disc/diffaug.py, DiffAug.aug):
// per call three flags (translation, colour, cutout; each on with probability p, drawn once per
// call as the release's torch.rand(3)) and seven uniforms per sample r0..r6:
//   translation  d = round(0.125 S) per dim, shift = floor(r * (2d + 1)) - d  (r0: rows, r1: cols)
//   colour       brightness r2 - 0.5, saturation 2 r3, contrast r4 + 0.5
//   cutout       c = round(ratio S), offset = floor(r * (S + 1 - c % 2)), the rows
//                clamp(offset - c/2 + i, 0, S - 1) for i < c (likewise columns, r5 / r6)
// (round: Python's, half to even; products in float32 as PyTorch's). The uniforms come from the
// counter RNG keyed by (seed, DiffAug, step, global sample id), element 8 * call + k; the flags
// from (seed, DiffAug, step, 2^62 + call) (the same on every rank), so an augmentation does not
// depend on the rank count. The ops are in ops/diffaug.h; every stage is linear in the image,
// so the backward needs only the parameters.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/arena.h"
#include "tensor/tensor.h"

namespace rae::models {

// One call's parameters, host tensors: shifts (B, 2) I32, factors (B, 3) F32, boxes (B, 4) I32.
struct DiffAugParams {
  bool translate = false, color = false, cutout = false;
  Tensor shifts, factors, boxes;
  DiffAugParams to(Device device) const;
};

// The parameters from the uniforms u (B, 7) (row b: r0..r6 of sample b) for images of
// height x width (the release's formulas above).
DiffAugParams diffaug_params(const std::vector<float>& u, int64_t B, int64_t height, int64_t width,
                             bool translate, bool color, bool cutout, double cutout_ratio);

struct DiffAugConfig {
  double prob = 1.0;
  double cutout = 0.0;
  uint64_t seed = 0;
};

// The draws of call `call` (0: the generator's fake images, 1: the discriminator's fake, 2: its
// real) of step `step` for samples `ids` (host I64).
DiffAugParams draw_diffaug(const DiffAugConfig& cfg, uint64_t step, int call, const Tensor& ids,
                           int64_t height, int64_t width);

// out = cutout(colour(translate(x))) with the enabled stages; x, out (B, H, W, C) on one device.
void diffaug_forward(nn::Arena& arena, const Tensor& out, const Tensor& x, const DiffAugParams& p);
// dx += the transposed chain applied to dout.
void diffaug_backward(nn::Arena& arena, const Tensor& dx, const Tensor& dout,
                      const DiffAugParams& p);

}  // namespace rae::models
