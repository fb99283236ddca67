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

#include "models/denoiser.h"
#include "nn/arena.h"
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
  // Every key is required and checked (type, range, divisibility: no SIGFPE, no overflow, no
  // huge allocation); unknown keys are refused. Errors start with `where` and name the key.
  static DiTConfig from_json(const std::string& text, const std::string& where = "DiT config");
  void validate(const std::string& where) const;
};

// The config of a release state dict without metadata, from the tensor shapes and names, with
// the head counts of the release presets (head_dim 64, or 72 for width 1152 with 16 heads). The
// split between body and head blocks comes from their widths; when body and head have the same
// width the names cannot tell it and this is an error (convert with
// tools/convert_rae_checkpoint.py --head-depth N, which records the config).
DiTConfig infer_dit_config(const std::map<std::string, Tensor>& tensors);

// Presets: DiTDH-S/B/L/XL (head 2048 x 2, 16 heads), DiTDH-tiny, DiTDH-micro (tests), and the
// plain LightningDiT DiT-S/B/L/XL (head_depth 0: c = t_emb + y_emb, x embedded once, final
// layer conditioned per sample on c), DiT-micro.
DiTConfig dit_preset(const std::string& name);
std::vector<std::string> dit_preset_names();

// The model type of a config: "DiTDH", or "DiT" for the plain LightningDiT (head_depth 0).
const char* dit_type(const DiTConfig& c);

class DiTDH : public Denoiser {
 public:
  // allocate = false only declares the parameters (names, shapes, counts) without memory.
  explicit DiTDH(const DiTConfig& cfg, bool allocate = true);
  const DiTConfig& dit_config() const { return cfg_; }

  std::string type() const override { return dit_type(cfg_); }
  nlohmann::json config() const override;
  std::vector<int> block_groups() const override { return block_groups_; }
  std::string summary() const override;
  int64_t grid() const override { return cfg_.grid; }
  int64_t channels() const override { return cfg_.in_channels; }
  int64_t num_classes() const override { return cfg_.num_classes; }
  bool has_null_class() const override { return cfg_.class_dropout > 0; }

  // The release's initialize_weights() (linears keep torch's default kaiming-uniform init,
  // patch embedders xavier-uniform, label table N(0, 0.02), time MLP weights N(0, 0.02),
  // adaLN and final layers zero, Fourier W N(0, 1)); randomness from rng purpose Init keyed by
  // parameter id. Also fills the fixed sin-cos position table.
  void init(uint64_t seed) override;
  // Moves parameters, buffers and tables to `device` (init() and the constructor fill them on
  // the CPU). Activations then live in an arena of that device.
  void to(Device device) override;

  // Denoiser: x (B, T, C) tokens of x_t, t (B) F32, y (B) I32 (null class = num_classes).
  void forward(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
               const Tensor& y) override;
  void backward(nn::Arena& arena, const Tensor& dout) override;
  void infer(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
             const Tensor& y) override;

 private:
  void forward_any(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
                   const Tensor& y);
  // Where block outputs go: a new arena tensor per block when saving for backward, else two
  // buffers in turn (inference keeps only the current block's input and output).
  struct Chain {
    Tensor buf[2];
    int next = 0;
  };
  Chain chain(nn::Arena& arena, const Shape& shape) const;
  Tensor chain_next(nn::Arena& arena, Chain& c, const Shape& shape) const;
  void block_forward(int64_t i, nn::Arena& arena, nn::DiTBlock::Saved& s, const Tensor& x_out,
                     const Tensor& x_in, const Tensor& cond, const Tensor& cos, const Tensor& sin);
  void block_backward(int64_t i, nn::Arena& arena, const nn::DiTBlock::Saved& s, const Tensor& dx,
                      const Tensor& dcond, const Tensor& cos, const Tensor& sin);
  // The body, shared by DiT^DH and plain DiT: xs[0] = embedder(x) + pos_embed, then the body
  // blocks conditioned per sample on sv_.c (forward); back through them and the embedder, dx
  // (B, T, body_width) holding dL/d(body output) on entry, dc += the condition's gradient.
  void body_forward(nn::Arena& arena, const nn::Linear& embedder, const Tensor& x);
  void body_backward(nn::Arena& arena, const nn::Linear& embedder, const Tensor& dx,
                     const Tensor& dc);
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
  bool saving_ = true;           // false inside infer(): block scratch is rewound, nothing kept
  bool backward_ready_ = false;  // the last forward saved what backward needs
  std::vector<int> block_groups_;
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

}  // namespace rae::models
