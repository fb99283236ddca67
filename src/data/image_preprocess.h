// Image preprocessing for the encoders, equivalent to the RAE release's pipeline:
//   PIL image -> ADM center_crop_arr(256) -> [flip] -> ToTensor (/255) ->
//   F.interpolate(bicubic, align_corners=False) to the encoder input -> (x - mean) / std.
// The PIL resampling (BOX and BICUBIC with a = -0.5, filter support scaled when downsampling,
// 8-bit fixed-point coefficients, horizontal pass then vertical) is reimplemented exactly.
#pragma once
#include <array>
#include <vector>

#include "data/image_decode.h"
#include "models/vit_encoder_resample.h"

namespace rae::data {

enum class PilFilter { Box, Bicubic };

// PIL Image.resize(size, resample) on an 8-bit image (any channel count), reducing_gap=None.
Image pil_resize(const Image& in, int out_w, int out_h, PilFilter filter);

// guided-diffusion center_crop_arr: BOX halving while min side >= 2*size, BICUBIC so the min
// side is `size` (Python round-half-even), then the center size x size crop.
Image center_crop_arr(const Image& in, int size);

Image flip_horizontal(const Image& in);

// PyTorch-style bicubic weights and separable resampling live in models/ (position-embedding
// interpolation needs them below this layer).
using models::InterpWeights;
using models::resample_planar;
using models::torch_bicubic_weights;

// ToTensor + bicubic resize to `out_size` + per-channel normalization: returns (3, S, S) floats.
std::vector<float> to_encoder_input(const Image& rgb, int out_size,
                                    const std::array<float, 3>& mean,
                                    const std::array<float, 3>& std);

}  // namespace rae::data
