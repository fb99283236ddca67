// The RAE stage-1 decoder (GeneralDecoder of the release, src/stage1/decoders/decoder.py, with
// configs/decoder/ViT{B,L,XL}): an MAE-style ViT that maps a token grid (B, T, latent) back to
// pixels. decoder_embed (latent -> width) on every token, a trainable CLS token prepended, the
// fixed 2D sin-cos position table added (its CLS row is zero), pre-LN ViTMAE layers (LayerNorm
// eps 1e-12, query/key/value Linears with bias, softmax attention, exact-erf GELU MLP),
// decoder_norm, decoder_pred (width -> p*p*3) per token, the CLS row dropped, and unpatchify
// ("nhwpqc -> nchpwq") to (B, 3, grid*p, grid*p).
//
// The output is the release's `unpatchify(decoder(z).logits)`: pixels still normalised with the
// encoder's mean/std (RAE.decode undoes that afterwards; see sampling/decode.h).
//
// Parameters carry the release's state_dict names (decoder_embed.weight, decoder_layers.3.
// attention.attention.query.weight, ..., trainable_cls_token; decoder_pos_embed is a buffer) in
// a ParamStore with one group per layer, so the distributed layer can shard per block. The
// query, key and value weights (and biases) are declared next to each other, so the flat group
// buffer holds them as one fused (3W, W) qkv matrix: one GEMM per layer, no copies.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include "nn/arena.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/params.h"

namespace rae::models {

struct VitDecoderConfig {
  std::string name = "custom";
  int64_t latent_channels = 768;  // the encoder's token width (the release's hidden_size)
  int64_t width = 1152, depth = 28, heads = 16, mlp_hidden = 4096;
  int64_t patch = 16, grid = 16;  // grid x grid tokens -> (grid * patch)^2 pixels
  int64_t channels = 3;
  double ln_eps = 1e-12;
  // The encoder's pixel normalisation, undone after decoding (not a weight: RAE.decode applies
  // it). ImageNet by default (DINOv2, MAE); SigLIP2 uses 0.5 / 0.5.
  std::array<float, 3> pixel_mean{0.485f, 0.456f, 0.406f}, pixel_std{0.229f, 0.224f, 0.225f};

  int64_t tokens() const { return grid * grid; }
  int64_t image_size() const { return grid * patch; }
  int64_t patch_dim() const { return patch * patch * channels; }
  std::string to_json() const;
  static VitDecoderConfig from_json(const std::string& text);  // errors name the key
};

// Presets (also in the model registry, type "ViTDecoder"): ViT-B (768 x 12, 12 heads, MLP
// 3072), ViT-L (1024 x 24, 16, 4096), ViT-XL (1152 x 28, 16, 4096), all with patch 16 on a 16 x 16
// grid of 768-channel tokens (256 px); "ViT-tiny" (64 x 2, 4 heads, 64-channel tokens: the
// tiny-random encoder) for the demo and tests, "ViT-micro" (16 x 2, 2 heads, 8 channels, 4 x 4
// grid, patch 4) for goldens.
VitDecoderConfig decoder_preset(const std::string& name);
std::vector<std::string> decoder_preset_names();

constexpr const char* kVitDecoderType = "ViTDecoder";

// The config of a bare decoder state dict (a converted file records its spec: models/registry.h
// spec_from_metadata), inferred from the shapes with the release's head counts (width 768: 12,
// 1024 and 1152: 16, else width / 64).
VitDecoderConfig infer_decoder_config(const std::map<std::string, Tensor>& tensors);

// An nn::Module (type "ViTDecoder", config = VitDecoderConfig's JSON): the trainer shards it per
// decoder layer (block_groups(): one group per layer; the embedder with the CLS token, and the
// final norm with decoder_pred, are root groups) and a stage-1 objective runs forward/backward
// on it like any model; the hooks fire around each layer's forward and backward.
class VitDecoder : public nn::Module {
 public:
  // allocate = false only declares the parameters (names, shapes, counts).
  explicit VitDecoder(const VitDecoderConfig& cfg, bool allocate = true);
  const VitDecoderConfig& decoder_config() const { return cfg_; }

  std::string type() const override { return kVitDecoderType; }
  nlohmann::json config() const override;
  std::vector<int> block_groups() const override { return block_groups_; }
  std::string summary() const override;
  int64_t tokens() const { return cfg_.tokens(); }
  int64_t latent_channels() const { return cfg_.latent_channels; }
  int64_t image_size() const { return cfg_.image_size(); }

  // PyTorch's defaults as the release leaves them: Linear weights and biases
  // U(+-1/sqrt(fan_in)), LayerNorm 1 / 0, CLS token 0 (set_trainable_cls_token); randomness from
  // rng purpose Init keyed by parameter id. The position table is filled by the constructor.
  void init(uint64_t seed) override;
  void to(Device device) override;

  // z (B, T, latent) tokens (latents already de-normalised; F32 or the arena's activation
  // dtype), out (B, 3, S, S) with S = grid * patch, in the arena's activation dtype. Saves
  // activations in `arena` for backward.
  void forward(nn::Arena& arena, const Tensor& out, const Tensor& z);
  // The same output, bit for bit, keeping nothing for backward (each layer's scratch is rewound
  // after the layer): decoding samples and reconstructions.
  void infer(nn::Arena& arena, const Tensor& out, const Tensor& z);
  // Accumulates parameter gradients for dL/dout (B, 3, S, S) of the last forward(); dz
  // (B, T, latent) += dL/dz when defined. Parameters whose gradients are unbound (a frozen
  // model) get none.
  void backward(nn::Arena& arena, const Tensor& dout, const Tensor& dz = Tensor());
  // dw (P, W) F32 += the gradient w.r.t. decoder_pred.weight that backward(dout) would add, from
  // the last training forward, without touching any parameter gradient: decoder_pred is linear,
  // so it is dY^T h with dY the gradient at its output (unpatchify's adjoint of dout, zero on
  // the CLS row) and h its saved input. Stage 1's adaptive GAN weight compares it for two losses.
  void pred_weight_grad(nn::Arena& arena, const Tensor& dout, const Tensor& dw) const;
  int num_blocks() const { return static_cast<int>(cfg_.depth); }

 private:
  struct Layer {
    int ln1_w = -1, ln1_b = -1, ln2_w = -1, ln2_b = -1;
    int q_w = -1, q_b = -1;  // first of the fused [query | key | value] weights and biases
    nn::Linear proj, fc1, fc2;
    int group = -1;
  };
  struct LayerSaved {
    Tensor x_in, mean1, rstd1, h1, qkv, att, lse, x_mid, mean2, rstd2, h2, u, g;
  };
  Tensor qkv_weight(const Layer& l, bool grad) const;  // (3W, W) view of the flat group buffer
  Tensor qkv_bias(const Layer& l, bool grad) const;    // (3W)
  void layer_forward(int i, nn::Arena& A, LayerSaved& s, const Tensor& x_out, const Tensor& x_in);
  void layer_backward(int i, nn::Arena& A, const LayerSaved& s, const Tensor& dx);
  void forward_any(nn::Arena& A, const Tensor& out, const Tensor& z, bool save);

  VitDecoderConfig cfg_;
  std::vector<int> block_groups_;
  bool backward_ready_ = false;  // the last forward saved what backward needs
  nn::Linear embed_, pred_;
  int cls_ = -1, norm_w_ = -1, norm_b_ = -1, pos_ = -1;
  std::vector<Layer> layers_;

  struct Saved {
    int64_t B = 0;
    Tensor z, x0;
    std::vector<Tensor> xs;  // input of each layer, then the last layer's output
    std::vector<LayerSaved> layer;
    Tensor mean_f, rstd_f, hf;
  } sv_;
};

}  // namespace rae::models
