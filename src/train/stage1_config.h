// Stage-1 (decoder) training keys, beside the training keys of train/config.h in one config file
// (jobs/decoder-*.cfg). The values of the release's stage-1 recipe
// (configs/stage1/training/DINOv2-B_decXL.yaml, src/train_stage1.py) are the defaults; the
// decoder's optimizer and schedule are the [optim] / [schedule] / [train] keys, the
// discriminator's its own [disc] keys.
#pragma once
#include <boost/program_options.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace rae::train {

struct Stage1Config {
  // [decoder]
  std::string decoder_preset = "ViT-XL";  // models/vit_decoder.h presets
  std::string decoder_overrides = "{}";   // JSON merged into the preset's config
  // [encoder]
  int64_t encoder_input_size = 0;  // 0: the family's (DINOv2 224, SigLIP2 and MAE 256)
  // [images]
  int64_t image_size = 256;  // the random crop (= the decoder's output size)
  int64_t resize = 0;        // shorter side before the crop; 0: 384 at 256, else 1.5 x (release)
  // [loss]
  double perceptual_weight = 1.0;      // LPIPS
  double disc_weight = 0.75;           // the GAN term's weight (times the adaptive lambda)
  double lpips_start_epoch = 0;        // LPIPS in the loss from this epoch
  double disc_start_epoch = 8;         // the GAN term in the decoder's loss from this epoch (E2)
  double disc_update_start_epoch = 6;  // discriminator updates from this epoch (E1)
  double max_d_weight = 1e4;           // lambda clamped to [0, max]
  double noise_tau = 0.8;              // sigma = tau U(0, 1) per sample on the encoder's tokens
  std::string lpips = "random";        // LPIPS weights: a converted file, or random (tests, demo)
  // [disc]
  std::string dino = "random-S_8";  // DINO weights: a converted file, or random-<recipe>
  std::string recipe = "S_8";       // S_8, S_16, B_16, tiny
  int64_t disc_input_size = 224;    // the trunk's input (FrozenDINONoDrop resizes to 224)
  int64_t kernel_size = 9;
  double norm_eps = 1e-6;
  std::string key_depths = "2,5,8,11";
  double aug_prob = 1.0;  // DiffAug: probability of each of translation, colour, cutout
  double cutout = 0.0;    // cutout size ratio (the release's config: 0 = off)
  double disc_lr = 2e-4, disc_beta1 = 0.9, disc_beta2 = 0.95, disc_eps = 1e-8;
  double disc_weight_decay = 0;
  std::string disc_schedule = "cosine";
  double disc_warmup_epochs = 1, disc_decay_end_epoch = 16, disc_final_lr = 2e-5;
  bool disc_warmup_from_zero = true;
  // [recon]
  int64_t recon_every = 2500;  // steps between reconstruction grids (0: only the last step)
  int64_t recon_count = 4;     // images in a grid (from the first global batch of the step)
  // [eval]
  int64_t eval_every = 0;       // steps between rFID evaluations with --ref (0: at the end)
  int64_t eval_samples = 1000;  // reconstructed images per evaluation
  int64_t eval_batch = 32;      // images per decoder batch during evaluation

  void from_variables(const boost::program_options::variables_map& vm);
  void validate() const;  // errors name the key
  std::string to_ini() const;
  std::vector<int> depths() const;  // key_depths parsed
  // The shorter side the images are resized to before the crop.
  int64_t resize_size() const;
};

// Every stage-1 key, for the command line and for check_config_file(path, &options).
boost::program_options::options_description stage1_options();

}  // namespace rae::train
