// From normalised latents to pixels, as the release's RAE.decode and sample_ddp.py do it:
//   z (B, T, C) -> z * sqrt(var + 1e-5) + mean      (the latent statistics, undone:
//                                                    diffusion::denormalize_latents)
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

#include "diffusion/latent_norm.h"
#include "models/vit_decoder.h"
#include "nn/arena.h"
#include "sampling/model_source.h"
#include "tensor/tensor.h"

namespace rae::sampling {

// Latent statistics from a file named by --stats: our cache's stats.safetensors ("mean", "var"
// (T, C)), a converted release stat.pt ((C, H, W) or (1, C, H, W), transposed to tokens; a
// missing tensor means 0 / 1 as in the release), or a file carrying latent_stats.mean /
// latent_stats.var (an export). Errors name the file, the tensor and the expected shape.
diffusion::LatentStats load_latent_stats(const std::string& path, int64_t tokens, int64_t channels);

// (N, C, H, W) -> (N, H*W, C) F32 tokens in row-major (h, w) order (the release's latent layout
// to ours; ops::patchify with patch 1).
Tensor chw_to_tokens(const Tensor& x);

// Latents to decode, from a .npz (latents.npz of `rae sample`) or a safetensors file: "latents"
// (N, T, C) tokens or the release's (N, C, H, W), as (N, T, C) F32, and the statistics stored
// with them (latent_stats.mean / .var, and in an .npz latent_stats.eps (1) f64; undefined when
// the file has none). Errors name the file, the key and the expected shape.
constexpr const char* kLatentEpsArray = "latent_stats.eps";
struct LatentsFile {
  Tensor latents;
  diffusion::LatentStats stats;
};
LatentsFile read_latents_file(const std::string& path, int64_t tokens, int64_t channels);

// The decoder of `src` (a file with model_type "ViTDecoder" or a bare release decoder state dict,
// a stage-1 run or checkpoint directory, or random:PRESET[:SEED]), moved to `device`.
// `latent_channels` > 0 overrides a random preset's latent width (the tiny-random encoder's 64).
std::unique_ptr<models::VitDecoder> load_decoder(const ModelSource& src, Device device,
                                                 int64_t latent_channels = 0);
// The decoder of a stage-1 checkpoint (for resolve_model_source): the one of type ViTDecoder.
bool is_decoder_model(const std::string& name, const models::ModelSpec& spec);

// The release's uint8 conversion of (B, 3, S, S) float pixels (already de-normalised) to
// (B, S, S, 3): clamp to [0, 1], * 255 in float32, truncate. NaN becomes 0.
void pixels_to_u8(const float* pixels, int64_t batch, int64_t size, uint8_t* out);

class DecodePipeline {
 public:
  // The decoder stays owned by the caller and must live on `device`.
  // Undefined `stats`: no de-normalisation (the release's do_normalization = False).
  DecodePipeline(models::VitDecoder& decoder, const diffusion::LatentStats& stats, Device device,
                 DType act_dtype = DType::F32);
  const models::VitDecoderConfig& config() const { return decoder_->decoder_config(); }
  int64_t image_size() const { return config().image_size(); }

  // z (B, T, C) normalised latents (any device) -> (B, 3, S, S) F32 on the CPU, after the pixel
  // mean/std, unclamped.
  Tensor decode_pixels(const Tensor& z);
  // The decoder's output for z on the device (the arena's dtype), before the pixel mean/std;
  // valid until the next call. Runs the decoder's inference pass (VitDecoder::infer).
  Tensor decode_device(const Tensor& z);
  // The same, converted as the release's sampler: (B, S, S, 3) uint8.
  std::vector<uint8_t> decode_u8(const Tensor& z);
  // z (B, T, C) raw encoder tokens -> (z - mean) / sqrt(var + eps) (diffusion::
  // normalize_latents), a new F32 tensor on the pipeline's device.
  Tensor normalize(const Tensor& z) const;
  // The encoder's pixel normalisation to undo (default: the decoder config's).
  void set_pixel_norm(const std::array<float, 3>& mean, const std::array<float, 3>& std) {
    pixel_mean_ = mean, pixel_std_ = std;
  }

 private:
  // z on the pipeline's device as a new contiguous F32 tensor (never the caller's memory).
  Tensor on_device(const Tensor& z) const;
  models::VitDecoder* decoder_;
  Device device_;
  nn::Arena arena_;
  diffusion::LatentStats stats_;  // on the device
  std::array<float, 3> pixel_mean_, pixel_std_;
};

// "imagenet" (DINOv2, MAE: 0.485/0.456/0.406, 0.229/0.224/0.225) or "siglip" (0.5, 0.5): the
// encoder normalisation a decoder's output is in. Throws naming the value otherwise.
void pixel_norm_from_name(const std::string& name, std::array<float, 3>* mean,
                          std::array<float, 3>* std);

}  // namespace rae::sampling
