// Frozen ViT encoders of stage 1 (forward only): DINOv2 with registers (S/B/L), SigLIP(2) vision
// tower, MAE. One pre-LN ViT implementation covers all three; the families differ in their
// prefix tokens (CLS, registers), position embeddings, GELU flavour, layer scale and LN eps.
// Output as the RAE release (src/stage1/encoders/*.py): the last hidden state after the final
// LayerNorm WITHOUT its affine weight and bias, CLS and register tokens dropped: (B, H*W, C).
// Weights load from a Hugging Face model directory (config.json + model.safetensors, HF
// parameter names); position embeddings are interpolated to the input grid exactly as HF's
// interpolate_pos_encoding does (bicubic; DINOv2 with antialias), once at load time.
//
// The GAN discriminator's frozen DINO ViT (the RAE release's FrozenDINONoDrop, src/disc/
// dinodisc.py; timm parameter names, CLS token, tanh GELU, no final LayerNorm) is the Dino
// family: load_dino() reads it, forward_blocks() returns the hidden states after chosen blocks
// for a loss that is differentiated w.r.t. the pixels, and backward_input() propagates that
// gradient back to the pixels (weights frozen: no weight gradients).
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include "nn/arena.h"
#include "ops/activation.h"
#include "tensor/tensor.h"

namespace rae::models {

enum class EncoderFamily { Dinov2, Siglip, Mae, Dino };
const char* encoder_family_name(EncoderFamily f);

struct VitEncoderConfig {
  EncoderFamily family = EncoderFamily::Dinov2;
  int64_t hidden = 0, layers = 0, heads = 0, mlp_hidden = 0;
  int64_t patch = 14;
  int64_t config_image_size = 518;  // the checkpoint's native size (its position grid)
  int64_t num_registers = 0;        // DINOv2 with registers: 4
  double ln_eps = 1e-6;
  ops::GeluKind gelu = ops::GeluKind::Exact;
  int64_t input_size = 224;  // encoder input resolution (pixels are resized to this)
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f}, std{0.229f, 0.224f, 0.225f};

  int64_t grid() const { return input_size / patch; }
  int64_t tokens() const { return grid() * grid(); }
  int64_t prefix_tokens() const { return family == EncoderFamily::Siglip ? 0 : 1 + num_registers; }
};

struct EncoderLoadOptions {
  int64_t input_size = 0;  // 0: the family default (DINOv2 224, SigLIP 256, MAE 256)
  Device device = Device::cpu();
};

class VitEncoder {
 public:
  // `source`: a Hugging Face model directory, or a preset with weights from the counter RNG:
  // "tiny-random" (a small DINOv2-style model for tests and the demo) or "random-dinov2-s|b|l"
  // (the real DINOv2-with-registers shapes, for benchmarks).
  static VitEncoder load(const std::string& source, const EncoderLoadOptions& opts = {});
  // From a config and HF-named tensors (the loader and tests use it).
  static VitEncoder from_hf_tensors(const VitEncoderConfig& cfg,
                                    const std::map<std::string, Tensor>& tensors,
                                    const std::string& prefix, Device device);

  // pixels (B, 3, S, S) F32, already normalized with config().mean/std, S = input_size.
  // Returns (B, H*W, C) F32 on the encoder's device.
  Tensor forward(const Tensor& pixels) const;

  // The DINO discriminator's trunk (any family): `source` is a converted DINO weights file
  // (.safetensors with timm names: tools/convert_lpips_weights.py --dino) or a random preset
  // "random-<recipe>" (synthetic weights of models/synthetic_weights.h; recipes in
  // dino_recipe()). `input_size` 0: the recipe's (224).
  static VitEncoder load_dino(const std::string& source, const std::string& recipe,
                              int64_t input_size, Device device);
  // timm-named tensors (patch_embed.proj.*, cls_token, pos_embed, blocks.N.{norm1, attn.qkv,
  // attn.proj, norm2, mlp.fc1, mlp.fc2}.*) of a CLS-token ViT; the position grid is resized
  // bilinearly to the input grid when it differs (the release's inter_pos_embed).
  static VitEncoder from_timm_tensors(const VitEncoderConfig& cfg,
                                      const std::map<std::string, Tensor>& tensors,
                                      const std::string& where, Device device);

  // Activations of forward_blocks kept for backward_input (in the caller's arena).
  struct LayerActs {
    Tensor x_in, mean1, rstd1, h1, qkv, att, lse, x_mid, mean2, rstd2, h2, u, g;
  };
  struct Saved {
    Tensor pixels;
    std::vector<int> blocks;
    std::vector<LayerActs> layers;
  };
  // pixels (B, S, S, 3) channels last, F32, already normalised; returns, per entry of `blocks`
  // (0-based block indices, any order, repeats allowed), the hidden state after that block
  // without the prefix tokens, (B, H*W, C) F32, no final LayerNorm. With `saved` every
  // activation backward_input needs is kept in `arena` (else buffers are reused).
  std::vector<Tensor> forward_blocks(nn::Arena& arena, const Tensor& pixels,
                                     const std::vector<int>& blocks, Saved* saved) const;
  // dpixels (B, S, S, 3) F32 += the gradient w.r.t. the pixels of sum_k <dblocks[k], block k's
  // output> (dblocks matched to saved.blocks; undefined entries are zero).
  void backward_input(nn::Arena& arena, const Saved& saved, const std::vector<Tensor>& dblocks,
                      const Tensor& dpixels) const;

  const VitEncoderConfig& config() const { return cfg_; }
  // Moves the weights to `device`.
  void to(Device device);
  const std::string& id() const { return id_; }  // "dinov2_with_registers-h768-l12", ...
  // The weights file (hashed into the cache manifest) or, for presets, "preset:<name>".
  const std::string& weights_source() const { return weights_source_; }
  Device device() const { return device_; }

 private:
  struct Layer {
    Tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  VitEncoderConfig cfg_;
  Device device_ = Device::cpu();
  Tensor patch_w, patch_b;  // (C, p*p*3) in patchify's (p_h, p_w, c) order, (C)
  Tensor prefix_rows;       // (prefix, C): CLS (+ its position) and registers
  Tensor patch_pos;         // (H*W, C) interpolated to the input grid
  std::vector<Layer> layers_;
  std::string id_, weights_source_;
};

// The release's DINO discriminator recipes (src/disc/dinodisc.py `recipes`): S_8, S_16, B_16,
// and "tiny" (width 16, 12 blocks, 2 heads, patch 8: tests and the demo). Sets family Dino,
// tanh GELU, ln_eps 1e-6, ImageNet mean/std and input_size 224.
VitEncoderConfig dino_recipe(const std::string& name);
// The timm-named synthetic weights of a recipe (models/synthetic_weights.h; what "random-<recipe>"
// loads): ViT scales, LayerNorm weights in [0.4, 1.2).
std::map<std::string, Tensor> synthetic_dino_tensors(const VitEncoderConfig& recipe);

// Bicubic interpolation of a (G*G, C) position grid to (g*g, C) as HF does it (F.interpolate,
// align_corners=False; `antialias` for DINOv2, size-based scale in both cases). CPU, F32.
Tensor interpolate_pos_grid(const Tensor& pos, int64_t src_grid, int64_t dst_grid, bool antialias);

}  // namespace rae::models
