// The stage-1 objective: the RAE decoder trained on a frozen encoder's tokens with L1 + LPIPS +
// an adaptively weighted GAN term (the release's src/train_stage1.py), on the engine's trainer
// (two models: "decoder", a models::VitDecoder, and "disc", the DINO discriminator's heads,
// models::DinoDiscHeads; each with its own AdamW, sharded like any model).
//
// One micro-batch (images x in [0, 1], from train/image_stream.h):
//   generator pass   z = encoder(x) (frozen, bicubic to its input size, normalised), the noise
//                    augmentation z + sigma eps (sigma = tau U(0, 1) per sample; ops/noise.h),
//                    recon = decoder(z) * std + mean (the encoder's pixel statistics),
//                    L_rec = |recon - x|_1 + w_p LPIPS(recon * 2 - 1, x * 2 - 1)   (LPIPS from E0)
//                    L_gan = -mean(D(DiffAug(recon * 2 - 1)))  (from E2; D in eval form: no
//                    power iteration, its parameters frozen, gradients only to the pixels)
//                    lambda = ||dL_rec/dW|| / (||dL_gan/dW|| + 1e-6), clamped to [0, max_d_weight]
//                    at the decoder's last layer W (decoder_pred.weight), and one backward of
//                    L_rec + w_d lambda L_gan
//   discriminator    from E1: recon' = decoder(z) without noise (the release's eval-mode
//   pass             forward), quantised to 8 bits in [-1, 1]; hinge loss
//                    0.5 (mean relu(1 - D(aug(real))) + mean relu(1 + D(aug(fake)))) with two
//                    training forwards of D (one power iteration each, as the release's
//                    discriminator(fake, real)), accuracy = mean(D(real) > D(fake)).
//
// lambda without two backwards: W is linear, so dL/dW = dY^T h with h the last layer's input
// (saved by the forward) and dY the gradient at its output, which the pixel-space gradient of
// each loss gives separately (VitDecoder::pred_weight_grad); the two are summed over the ranks
// first (one all-reduce), so lambda is the global batch's, the same on every rank and for every
// rank count (the release computes it from each rank's local batch). The decoder then runs one
// backward of dY_rec + w_d lambda dY_gan.
//
// Deviation from the release, by design of the one-step protocol: the discriminator's update of
// step s sees reconstructions of the decoder weights of step s (the release re-runs the decoder
// after its update, weights s + 1); both models update at the end of the step.
//
// Randomness: noise (seed, NoiseAug, step, id), DiffAug (seed, DiffAug, step, id), crops (the
// image stream): every draw is keyed by the global sample id, so the losses of 1, 2 or 4 ranks
// agree up to float summation order and CPU resume is bit-exact.
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/diffaug.h"
#include "models/dino_disc.h"
#include "models/lpips.h"
#include "models/vit_decoder.h"
#include "models/vit_encoder.h"
#include "nn/arena.h"
#include "train/objective.h"
#include "train/stage1_config.h"

namespace rae::train {

// Steps from which each part of the loss is on (epochs times steps per epoch).
struct Stage1Schedule {
  int64_t lpips_start = 0, gan_start = 0, disc_start = 0;
  static Stage1Schedule of(const Stage1Config& c, int64_t steps_per_epoch);
  bool lpips(int64_t step) const { return step >= lpips_start; }
  bool gan(int64_t step) const { return step >= gan_start; }
  bool disc(int64_t step) const { return step >= disc_start; }
};

// The random draws of one micro-batch, replaceable by tests (goldens from PyTorch):
// noise (B, T, C) F32 host = sigma_b * eps added to the tokens; DiffAug uniforms (B * 7) and
// flags per call (0: generator fake, 1: discriminator fake, 2: discriminator real).
struct Stage1Draws {
  Tensor noise;
  std::array<std::vector<float>, 3> aug;
  std::array<std::array<bool, 3>, 3> flags{};
};

class Stage1Objective : public Objective {
 public:
  // `encoder`: an encoder directory or preset (models/vit_encoder.h).
  Stage1Objective(const Stage1Config& cfg, const std::string& encoder);
  std::string name() const override { return "stage1"; }
  std::vector<ModelRole> roles(const TrainConfig& cfg, const BatchStream& data) override;
  void attach(const std::vector<TrainedModel*>& models, const StepEnv& env) override;
  Metrics micro_step(const MicroBatch& mb) override;
  void artifacts(std::map<std::string, Tensor>& tensors,
                 std::map<std::string, std::string>& metadata) const override;
  nlohmann::json describe() const override;
  std::string guard_metric() const override { return "l1"; }

  const Stage1Config& config() const { return cfg_; }
  const Stage1Schedule& schedule() const { return sched_; }
  const models::VitEncoder& encoder() const { return encoder_; }
  models::VitDecoder& decoder() { return *decoder_; }
  // Tests: the next micro-steps use these draws instead of the RNG's.
  void set_draws(std::optional<Stage1Draws> d) { draws_ = std::move(d); }
  // The last micro-step's lambda (0 while the GAN term is off).
  double last_lambda() const { return last_lambda_; }

  // Reconstructions (B, S, S, 3) U8 of images (B, S, S, 3) U8 (host) by `decoder` (the EMA or
  // the live weights), without noise, on the training device; runs the frozen encoder.
  Tensor reconstruct(models::VitDecoder& decoder, const Tensor& images);

 private:
  struct Batch;  // the device tensors of one micro-batch
  Batch prepare(const MicroBatch& mb);
  Tensor encode(const Tensor& images_u8);  // (B, T, C) F32 on the device, no noise
  void generator_pass(const MicroBatch& mb, Batch& b, Metrics& m);
  void discriminator_pass(const MicroBatch& mb, Batch& b, Metrics& m);
  // logits (heads, B, L) of images x (B, S, S, 3) in [-1, 1] after DiffAug `aug`.
  struct DiscPass {
    models::DiffAugParams aug;
    Tensor pixels;  // the trunk's input (B, Sd, Sd, 3)
    models::VitEncoder::Saved trunk;
    std::vector<Tensor> feats;
    models::DinoDiscHeads::Saved heads;
    Tensor logits;
  };
  void disc_forward(DiscPass& p, const Tensor& x, bool save_trunk, int power_iterations);
  // dx += the gradient of <dlogits, logits> w.r.t. the augmented input's source x.
  void disc_input_backward(DiscPass& p, const Tensor& dlogits, const Tensor& dx);
  models::DiffAugParams aug_params(const MicroBatch& mb, int call, int64_t B);

  Stage1Config cfg_;
  std::string encoder_source_;
  models::VitEncoder encoder_;
  models::VitEncoderConfig enc_cfg_;  // read in roles() (host), placed in attach()
  std::optional<models::Lpips> lpips_;
  models::VitEncoder dino_;
  Stage1Schedule sched_;
  models::VitDecoder* decoder_ = nullptr;
  models::DinoDiscHeads* disc_ = nullptr;
  TrainedModel* decoder_model_ = nullptr;
  TrainedModel* disc_model_ = nullptr;
  std::vector<int> taps_;  // the trunk blocks feeding the heads, release order
  StepEnv env_;
  nn::Arena arena_;
  std::optional<Stage1Draws> draws_;
  uint64_t seed_ = 0;
  double last_lambda_ = 0;
};

}  // namespace rae::train
