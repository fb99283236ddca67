// The trainable part of the RAE release's GAN discriminator (src/disc/dinodisc.py, DinoDisc):
// one head per feature map of the frozen DINO trunk (models/vit_encoder.h, forward_blocks), each
//
//   SpectralConv1d(C, C, 1) -> BatchNormLocal -> LeakyReLU(0.2)
//   -> Residual( SpectralConv1d(C, C, ks, circular padding ks/2) -> BatchNormLocal -> LeakyReLU )
//      i.e. (fn(x) + x) / sqrt(2)
//   -> SpectralConv1d(C, 1, 1)                                   one logit per token
//
// SpectralConv1d: torch.nn.utils.spectral_norm (one power iteration per training forward, the
// u/v buffers in checkpoints; ops/spectral_norm.h). BatchNormLocal with the release's
// virtual_bs = 1 normalises each sample's tokens on their own (per sample and channel over the
// L tokens, biased variance, eps = norm_eps, affine), which is batch statistics of the local
// batch in groups of one sample (ops::batchnorm_train_forward with groups = B), so nothing
// depends on the rank count.
//
// Feature maps come in the release's order: the last block's output, then blocks 2, 5, 8, 11
// (DinoDisc.forward inserts the last block first). Logits are (heads, B, L) F32, the release's
// (B, heads * L) transposed; every loss on them is a mean, and the accuracy compares fake and
// real logits elementwise in the same layout.
//
// Parameters carry the release's names (heads.K.0.0.weight_orig, heads.K.0.1.weight,
// heads.K.1.fn.0.weight_orig, heads.K.2.bias, ...; buffers heads.K.0.0.weight_u / _v) with conv
// weights channels last, (O, k, C) = PyTorch's (O, C, k) permuted; v follows that column order.
// One parameter group per head, none of them a repeated block (no block hooks): the sharding
// core gathers them at the start of a micro-batch and reduces them at its end, so the heads may
// run several forwards and backwards per micro-batch (fake and real).
#pragma once
#include <string>
#include <vector>

#include "nn/arena.h"
#include "nn/module.h"

namespace rae::models {

struct DinoDiscConfig {
  int64_t channels = 384;  // the DINO trunk's width
  int64_t heads = 5;       // key depths + 1
  int64_t kernel_size = 9;
  double norm_eps = 1e-6;
  std::string to_json() const;
  static DinoDiscConfig from_json(const std::string& text);  // errors name the key
};

class DinoDiscHeads : public nn::Module {
 public:
  explicit DinoDiscHeads(const DinoDiscConfig& cfg);
  const DinoDiscConfig& disc_config() const { return cfg_; }

  std::string type() const override { return "DinoDisc"; }
  nlohmann::json config() const override;
  std::vector<int> block_groups() const override { return {}; }
  // PyTorch's defaults: Conv1d U(+-1/sqrt(fan_in)) for weights and biases, BatchNormLocal 1 / 0,
  // spectral-norm u and v normalised N(0, 1) draws (rng purpose Init keyed by parameter id).
  void init(uint64_t seed) override;
  void to(Device device) override;

  struct HeadActs {
    Tensor f, y1, mean1, rstd1, a1, pad, y2, mean2, rstd2, a2, r;
    Tensor w_sn[3], sigma[3];
  };
  struct Saved {
    std::vector<HeadActs> heads;
    int64_t B = 0, L = 0;
  };
  // feats: `heads` tensors (B, L, C) F32; logits (heads, B, L) F32. power_iterations: 1 for the
  // discriminator's own update (training mode: u, v advance), 0 inside the generator's loss
  // (eval mode). With `saved`, what backward needs is kept in `arena`.
  void forward(nn::Arena& arena, const std::vector<Tensor>& feats, const Tensor& logits,
               int power_iterations, Saved* saved);
  // Parameter gradients (when bound: a frozen model gets none) and dfeats[k] += d/dfeats for
  // dlogits (heads, B, L); undefined dfeats entries are skipped.
  void backward(nn::Arena& arena, const Saved& saved, const Tensor& dlogits,
                const std::vector<Tensor>& dfeats);

 private:
  struct SnConv {
    int w = -1, b = -1, u = -1, v = -1;  // parameter ids, buffer ids
    int64_t out = 0, k = 1;
  };
  struct Head {
    SnConv c1, c2, c3;
    int bn1_w = -1, bn1_b = -1, bn2_w = -1, bn2_b = -1;
  };
  SnConv declare_conv(const std::string& name, int64_t out, int64_t k);
  void conv_forward(nn::Arena& A, const SnConv& c, const Tensor& x, const Tensor& out,
                    int power_iterations, Tensor* w_sn, Tensor* sigma);
  void conv_backward(nn::Arena& A, const SnConv& c, const Tensor& dx, const Tensor& dout,
                     const Tensor& x, const Tensor& w_sn, const Tensor& sigma);

  DinoDiscConfig cfg_;
  std::vector<Head> heads_;
};

}  // namespace rae::models
