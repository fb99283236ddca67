// Image preprocessing for the encoders, equivalent to the RAE release's pipeline:
//   PIL image -> ADM center_crop_arr(256) -> [flip] -> ToTensor (/255) ->
//   F.interpolate(bicubic, align_corners=False) to the encoder input -> (x - mean) / std.
// The PIL resampling (BOX and BICUBIC with a = -0.5, filter support scaled when downsampling,
// 8-bit fixed-point coefficients, horizontal pass then vertical) is reimplemented exactly.
#pragma once
#include <array>
#include <vector>

#include "data/image_decode.h"

namespace rae::data {

enum class PilFilter { Box, Bicubic };

// PIL Image.resize(size, resample) on an 8-bit image (any channel count), reducing_gap=None.
Image pil_resize(const Image& in, int out_w, int out_h, PilFilter filter);

// guided-diffusion center_crop_arr: BOX halving while min side >= 2*size, BICUBIC so the min
// side is `size` (Python round-half-even), then the center size x size crop.
Image center_crop_arr(const Image& in, int size);

Image flip_horizontal(const Image& in);

// 1-D interpolation weights as PyTorch's upsample kernels compute them, for a source of length
// `in` resampled to `out`. `scale` is the source step per output pixel (in / out, or
// 1 / scale_factor when F.interpolate gets a scale_factor). Bicubic without antialias uses
// a = -0.75 and 4 clamped taps; with antialias it is PIL's bicubic (a = -0.5) with support
// scaled by max(scale, 1).
struct InterpWeights {
  std::vector<int> start;      // per output: first source index
  std::vector<int> count;      // per output: number of taps
  std::vector<double> weight;  // per output: `taps` weights (unused slots 0)
  std::vector<int> index;      // per output: `taps` source indices (clamped for non-aa)
  int taps = 0;
};
InterpWeights torch_bicubic_weights(int in, int out, double scale, bool antialias);

// Separable resize of planar float data (C, H, W) -> (C, out_h, out_w) with the given weights
// (width first, then height, as PyTorch's separable kernels).
std::vector<float> resample_planar(const std::vector<float>& src, int channels, int h, int w,
                                   const InterpWeights& wy, const InterpWeights& wx);

// ToTensor + bicubic resize to `out_size` + per-channel normalization: returns (3, S, S) floats.
std::vector<float> to_encoder_input(const Image& rgb, int out_size, const std::array<float, 3>& mean,
                                    const std::array<float, 3>& std);

}  // namespace rae::data
