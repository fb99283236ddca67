// PyTorch's bicubic upsample kernels (F.interpolate mode="bicubic", align_corners=False), with and
// without antialias, as separable 1-D weights: used for the encoder input resize (256 -> 224) and
// HF's position-embedding interpolation.
#pragma once
#include <vector>

namespace rae::models {

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

}  // namespace rae::models
