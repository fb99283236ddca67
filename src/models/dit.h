// DiT^DH (DiTwDDTHead of the RAE release, src/stage2/models/DDT.py): a LightningDiT body of
// `body_depth` blocks conditioned per sample on c = silu(t_emb + y_emb), then a wide shallow
// head whose blocks and final layer are conditioned PER TOKEN on
// s = s_projector(silu(t_emb broadcast + body output)), applied to a fresh embedding of x_t.
// Tokens are (B, T, C) with T = grid_h * grid_w in row-major (h, w) order (patch size 1).
// Parameter names and shapes follow the release's state_dict.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/arena.h"
#include "nn/block_hooks.h"
#include "nn/dit_block.h"
#include "nn/layers.h"
#include "nn/params.h"

namespace rae::models {

struct DiTConfig {
  std::string name = "custom";
  int64_t in_channels = 768, grid = 16, num_classes = 1000;
  int64_t body_width = 1152, body_depth = 28, body_heads = 16;
  int64_t head_width = 2048, head_depth = 2, head_heads = 16;
  double mlp_ratio = 4.0;
  double class_dropout = 0.1;  // > 0 adds the null-class row (label num_classes)
  int64_t fourier_size = 256;
  int64_t tokens() const { return grid * grid; }
  std::string to_json() const;
  static DiTConfig from_json(const std::string& text);  // errors name the key
};

// The config of a state dict: from its "dit_config" metadata when present (our checkpoints),
// else inferred from the tensor shapes (converted release checkpoints), with the head counts
// of the release presets (head_dim 64, or 72 for width 1152 with 16 heads).
DiTConfig infer_dit_config(const std::map<std::string, Tensor>& tensors,
                           const std::map<std::string, std::string>& metadata);

// Presets: DiTDH-S/B/L/XL (head 2048 x 2, 16 heads), DiTDH-tiny, DiTDH-micro (tests), and the
// plain LightningDiT DiT-S/B/L/XL (head_depth 0: c = t_emb + y_emb, x embedded once, final
// layer conditioned per sample on c), DiT-micro.
DiTConfig dit_preset(const std::string& name);
std::vector<std::string> dit_preset_names();

class DiTDH {
 public:
  // allocate = false only declares the parameters (names, shapes, counts) without memory.
  explicit DiTDH(const DiTConfig& cfg, bool allocate = true);
  const DiTConfig& config() const { return cfg_; }
  nn::ParamStore& params() { return ps_; }
  const nn::ParamStore& params() const { return ps_; }

  // The release's initialize_weights() (linears keep torch's default kaiming-uniform init,
  // patch embedders xavier-uniform, label table N(0, 0.02), time MLP weights N(0, 0.02),
  // adaLN and final layers zero, Fourier W N(0, 1)); randomness from rng purpose Init keyed by
  // parameter id. Also fills the fixed sin-cos position table.
  void init(uint64_t seed);
  // Moves parameters, buffers and tables to `device` (init() and the constructor fill them on
  // the CPU). Activations then live in an arena of that device.
  void to(Device device);

  // x (B, T, C) F32 tokens of x_t, t (B) F32, y (B) I32 (null class = num_classes), out
  // (B, T, C). Saves activations in `arena` for backward (arena must not be reset in between).
  void forward(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
               const Tensor& y);
  // Accumulates parameter gradients for dL/dout (B, T, C).
  void backward(nn::Arena& arena, const Tensor& dout);
  // Called around each block's forward/backward (null: none); not owned.
  void set_block_hooks(nn::BlockHooks* hooks) { hooks_ = hooks; }

 private:
  void block_forward(int64_t i, nn::Arena& arena, nn::DiTBlock::Saved& s, const Tensor& x_out,
                     const Tensor& x_in, const Tensor& cond, const Tensor& cos, const Tensor& sin);
  void block_backward(int64_t i, nn::Arena& arena, const nn::DiTBlock::Saved& s, const Tensor& dx,
                      const Tensor& dcond, const Tensor& cos, const Tensor& sin);
  // LightningDiT (head_depth == 0), in dit_plain.cpp.
  // Shared by DiT^DH and plain DiT: t_emb = MLP(fourier(t)) into sv_, c_sum (B, W) = t_emb + y_emb.
  void condition_forward(nn::Arena& arena, const Tensor& c_sum, const Tensor& t, const Tensor& y);
  // Accumulates dsum into the label table and dtemb (which already holds dsum's share) through
  // the time MLP.
  void condition_backward(nn::Arena& arena, const Tensor& dtemb, const Tensor& dsum);
  void forward_plain(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
                     const Tensor& y);
  void backward_plain(nn::Arena& arena, const Tensor& dout);

  DiTConfig cfg_;
  bool plain_ = false;
  nn::BlockHooks* hooks_ = nullptr;
  nn::ParamStore ps_;
  nn::Linear x_embedder_, s_embedder_, s_projector_, t_mlp0_, t_mlp2_, final_ada_, final_linear_;
  bool has_projector_ = false;
  int label_table_ = -1, final_norm_ = -1, fourier_W_ = -1, pos_embed_ = -1;
  std::vector<nn::DiTBlock> blocks_;  // body then head
  Tensor body_cos_, body_sin_, head_cos_, head_sin_;

  struct Saved {
    int64_t B = 0;
    Tensor x, t, y, tf, th, ta, temb, cpre, c;
    std::vector<Tensor> xs;  // inputs of each block, then the last block's output
    Tensor spre, s, sp, fa, f_scale, rstd_f, hf;
    std::vector<nn::DiTBlock::Saved> blk;
  } sv_;
};

// Human-readable parameter count ("838.9M").
std::string format_count(int64_t n);

}  // namespace rae::models
