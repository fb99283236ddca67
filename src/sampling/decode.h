// From normalised latents to pixels, as the release's RAE.decode and sample_ddp.py do it:
//   z (B, T, C) -> z * sqrt(var + 1e-5) + mean      (the latent statistics, undone)
//                -> decoder + unpatchify              (models/vit_decoder.h)
//                -> x * pixel_std + pixel_mean         (the encoder's normalisation, undone)
//                -> clamp(0, 1) * 255 -> uint8 by truncation (torch .to(torch.uint8)), NHWC.
// And the encode side's normalisation (z - mean) / sqrt(var + 1e-5) for reconstructions.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/vit_decoder.h"
#include "nn/arena.h"
#include "tensor/tensor.h"

namespace rae::sampling {

// Per-element latent statistics in token layout (T, C), F32 on the CPU. Undefined (the
// default): no normalisation, as the release without normalization_stat_path.
struct LatentStats {
  Tensor mean, var;
  double eps = 1e-5;  // RAE(eps=1e-5)
  bool defined() const { return mean.defined(); }
};

// Reads "mean" and "var" from a safetensors file: our cache's stats.safetensors ((T, C)) or a
// converted release stat.pt ((C, H, W) or (1, C, H, W), transposed to tokens). A missing tensor
// means 0 / 1 as in the release. Errors name the file, the tensor and the expected shape.
LatentStats load_latent_stats(const std::string& path, int64_t tokens, int64_t channels);

// A decoder from a safetensors state dict (ours, with "decoder_config" metadata, or converted
// from the release), or "random:PRESET[:SEED]" (a preset with random weights: tests, the demo,
// benchmarks). `latent_channels` > 0 overrides a random preset's latent width (the tiny-random
// encoder's 64). Loaded on the CPU, then moved to `device`.
std::unique_ptr<models::VitDecoder> load_decoder(const std::string& source, Device device,
                                                 int64_t latent_channels = 0);

// The release's uint8 conversion of (B, 3, S, S) float pixels (already de-normalised) to
// (B, S, S, 3): clamp to [0, 1], * 255 in float32, truncate. NaN becomes 0.
void pixels_to_u8(const float* pixels, int64_t batch, int64_t size, uint8_t* out);

class DecodePipeline {
 public:
  // The decoder stays owned by the caller and must live on `device`.
  DecodePipeline(models::VitDecoder& decoder, LatentStats stats, Device device,
                 DType act_dtype = DType::F32);
  const models::VitDecoderConfig& config() const { return decoder_->config(); }
  int64_t image_size() const { return decoder_->config().image_size(); }

  // z (B, T, C) normalised latents (any device) -> (B, 3, S, S) F32 on the CPU, after the pixel
  // mean/std, unclamped.
  Tensor decode_pixels(const Tensor& z);
  // The decoder's output for z on the device (the arena's dtype), before the pixel mean/std;
  // valid until the next call.
  Tensor decode_device(const Tensor& z);
  // The same, converted as the release's sampler: (B, S, S, 3) uint8.
  std::vector<uint8_t> decode_u8(const Tensor& z);
  // z (B, T, C) raw encoder tokens -> (z - mean) / sqrt(var + eps), on z's device (F32).
  Tensor normalize(const Tensor& z) const;
  // The encoder's pixel normalisation to undo (default: the decoder config's).
  void set_pixel_norm(const std::array<float, 3>& mean, const std::array<float, 3>& std) {
    pixel_mean_ = mean, pixel_std_ = std;
  }

 private:
  Tensor denormalize(const Tensor& z) const;  // on the pipeline's device
  models::VitDecoder* decoder_;
  Device device_;
  nn::Arena arena_;
  // modulate tables (1, T*C) on the device: x * (1 + scale) + shift.
  Tensor de_shift_, de_scale_, en_shift_, en_scale_;
  std::array<float, 3> pixel_mean_, pixel_std_;
};

// "imagenet" (DINOv2, MAE: 0.485/0.456/0.406, 0.229/0.224/0.225) or "siglip" (0.5, 0.5): the
// encoder normalisation a decoder's output is in. Throws naming the value otherwise.
void pixel_norm_from_name(const std::string& name, std::array<float, 3>* mean,
                          std::array<float, 3>* std);

}  // namespace rae::sampling
