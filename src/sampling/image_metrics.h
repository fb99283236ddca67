// Reconstruction metrics of 8-bit RGB images (H, W, 3), computed on [0, 1] values (u8 / 255) as
// the release's evaluation does (src/eval/ref_iqa.py):
//   PSNR = 20 log10(1 / sqrt(max(mse, 1e-10))), mse over all pixels and channels;
//   SSIM = torchmetrics' structural_similarity_index_measure(data_range = 1): an 11 x 11
//          Gaussian window (sigma 1.5), k1 = 0.01, k2 = 0.03, the images reflect-padded by 5,
//          variances clamped at 0, the SSIM map averaged over the whole padded-and-filtered
//          image (torchmetrics >= 1.x does not crop the border) and the channels.
// Computed in double; images must be at least 6 x 6 (reflect padding by 5).
#pragma once
#include <cstdint>

namespace rae::sampling {

double psnr(const uint8_t* a, const uint8_t* b, int height, int width);
double ssim(const uint8_t* a, const uint8_t* b, int height, int width);

}  // namespace rae::sampling
