#include "train/stage1_config.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "train/config_keys.h"

namespace rae::train {

namespace {

using S = Stage1Config;

const std::vector<ConfigKey<S>>& keys() {
  static const std::vector<ConfigKey<S>> k = {
      {"decoder.preset", &S::decoder_preset, "ViT-{micro,tiny,B,L,XL} (models/vit_decoder.h)"},
      {"decoder.overrides", &S::decoder_overrides,
       "JSON object of decoder config keys replacing the preset's (e.g. {\"depth\":4})"},
      {"encoder.input_size", &S::encoder_input_size,
       "encoder input resolution (0: the family's: DINOv2 224, SigLIP2/MAE 256)"},
      {"images.image_size", &S::image_size, "training crop = decoder output size"},
      {"images.resize", &S::resize, "shorter side before the random crop (0: release rule)"},
      {"loss.perceptual_weight", &S::perceptual_weight, "LPIPS weight"},
      {"loss.disc_weight", &S::disc_weight, "GAN weight (times the adaptive lambda)"},
      {"loss.lpips_start_epoch", &S::lpips_start_epoch, "LPIPS from this epoch"},
      {"loss.disc_start_epoch", &S::disc_start_epoch, "GAN term in the decoder loss from (E2)"},
      {"loss.disc_update_start_epoch", &S::disc_update_start_epoch,
       "discriminator updates from this epoch (E1)"},
      {"loss.max_d_weight", &S::max_d_weight, "adaptive lambda clamped to [0, this]"},
      {"loss.noise_tau", &S::noise_tau, "token noise: sigma = tau * U(0,1) per sample"},
      {"loss.lpips", &S::lpips, "LPIPS weights (tools/convert_lpips_weights.py) or random"},
      {"disc.dino", &S::dino, "DINO weights (converted .safetensors) or random-<recipe>"},
      {"disc.recipe", &S::recipe, "DINO recipe: S_8 | S_16 | B_16 | tiny"},
      {"disc.input_size", &S::disc_input_size, "DINO input resolution (bilinear resize)"},
      {"disc.kernel_size", &S::kernel_size, "residual conv kernel of the heads"},
      {"disc.norm_eps", &S::norm_eps, "BatchNormLocal eps"},
      {"disc.key_depths", &S::key_depths, "DINO blocks feeding heads (plus the last)"},
      {"disc.aug_prob", &S::aug_prob, "DiffAug probability of each augmentation"},
      {"disc.cutout", &S::cutout, "DiffAug cutout ratio (0: off)"},
      {"disc.lr", &S::disc_lr, "discriminator learning rate"},
      {"disc.beta1", &S::disc_beta1, "discriminator AdamW beta1"},
      {"disc.beta2", &S::disc_beta2, "discriminator AdamW beta2"},
      {"disc.eps", &S::disc_eps, "discriminator AdamW eps"},
      {"disc.weight_decay", &S::disc_weight_decay, "discriminator AdamW weight decay"},
      {"disc.schedule", &S::disc_schedule, "constant | linear | cosine (from its first update)"},
      {"disc.warmup_epochs", &S::disc_warmup_epochs, "discriminator warmup in epochs"},
      {"disc.decay_end_epoch", &S::disc_decay_end_epoch, "discriminator decay end in epochs"},
      {"disc.final_lr", &S::disc_final_lr, "discriminator final learning rate"},
      {"disc.warmup_from_zero", &S::disc_warmup_from_zero, "linear warmup from 0"},
      {"recon.every", &S::recon_every, "steps between reconstruction grids (0: last step only)"},
      {"recon.count", &S::recon_count, "images per reconstruction grid"},
      {"eval.every", &S::eval_every, "steps between rFID evaluations with --ref (0: at the end)"},
      {"eval.samples", &S::eval_samples, "images reconstructed per rFID evaluation"},
      {"eval.batch", &S::eval_batch, "decoder batch during evaluation"},
  };
  return k;
}

}  // namespace

boost::program_options::options_description stage1_options() {
  return key_options(keys(), "stage-1 keys (--section.key=value)");
}

void Stage1Config::from_variables(const boost::program_options::variables_map& vm) {
  fill_keys(*this, keys(), vm);
  validate();
}

std::string Stage1Config::to_ini() const {
  return keys_to_ini(*this, keys());
}

std::vector<int> Stage1Config::depths() const {
  std::vector<int> d;
  std::stringstream ss(key_depths);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(tok, &used);
      RAE_CHECK(used == tok.size() || tok.find_first_not_of(' ', used) == std::string::npos,
                "trailing characters");
      d.push_back(v);
    } catch (const std::exception&) {
      RAE_THROW("config key 'disc.key_depths': '", key_depths,
                "' is not a comma-separated list of block indices");
    }
  }
  return d;
}

int64_t Stage1Config::resize_size() const {
  if (resize > 0) return resize;
  return image_size == 256 ? 384 : static_cast<int64_t>(image_size * 1.5);
}

void Stage1Config::validate() const {
  auto need = [](bool ok, const char* key, const auto& v, const char* what) {
    if (!ok) RAE_THROW("config key '", key, "': value ", v, " ", what);
  };
  bool overrides_ok = false;
  try {
    overrides_ok = nlohmann::json::parse(decoder_overrides).is_object();
  } catch (const nlohmann::json::exception&) {
  }
  need(overrides_ok, "decoder.overrides", decoder_overrides, "must be a JSON object");
  need(encoder_input_size >= 0, "encoder.input_size", encoder_input_size, "must be >= 0");
  need(image_size >= 16, "images.image_size", image_size, "must be >= 16 (LPIPS pools 4 times)");
  need(resize == 0 || resize >= image_size, "images.resize", resize,
       "must be 0 or >= images.image_size (the crop must fit)");
  need(perceptual_weight >= 0, "loss.perceptual_weight", perceptual_weight, "must be >= 0");
  need(disc_weight >= 0, "loss.disc_weight", disc_weight, "must be >= 0");
  need(lpips_start_epoch >= 0, "loss.lpips_start_epoch", lpips_start_epoch, "must be >= 0");
  need(disc_start_epoch >= 0, "loss.disc_start_epoch", disc_start_epoch, "must be >= 0");
  need(disc_update_start_epoch >= 0, "loss.disc_update_start_epoch", disc_update_start_epoch,
       "must be >= 0");
  need(max_d_weight >= 0, "loss.max_d_weight", max_d_weight, "must be >= 0");
  need(noise_tau >= 0, "loss.noise_tau", noise_tau, "must be >= 0");
  need(disc_input_size >= 8, "disc.input_size", disc_input_size, "must be >= 8");
  need(kernel_size >= 1 && kernel_size % 2 == 1, "disc.kernel_size", kernel_size,
       "must be odd and >= 1");
  need(norm_eps > 0, "disc.norm_eps", norm_eps, "must be > 0");
  need(aug_prob >= 0 && aug_prob <= 1, "disc.aug_prob", aug_prob, "must be in [0, 1]");
  need(cutout >= 0 && cutout < 1, "disc.cutout", cutout, "must be in [0, 1)");
  need(disc_lr >= 0, "disc.lr", disc_lr, "must be >= 0");
  need(disc_beta1 >= 0 && disc_beta1 < 1, "disc.beta1", disc_beta1, "must be in [0, 1)");
  need(disc_beta2 >= 0 && disc_beta2 < 1, "disc.beta2", disc_beta2, "must be in [0, 1)");
  need(disc_eps > 0, "disc.eps", disc_eps, "must be > 0");
  need(disc_weight_decay >= 0, "disc.weight_decay", disc_weight_decay, "must be >= 0");
  need(disc_schedule == "constant" || disc_schedule == "linear" || disc_schedule == "cosine",
       "disc.schedule", "'" + disc_schedule + "'", "must be constant, linear or cosine");
  need(recon_every >= 0, "recon.every", recon_every, "must be >= 0");
  need(recon_count >= 1, "recon.count", recon_count, "must be >= 1");
  need(eval_every >= 0, "eval.every", eval_every, "must be >= 0");
  need(eval_samples >= 1, "eval.samples", eval_samples, "must be >= 1");
  need(eval_batch >= 1, "eval.batch", eval_batch, "must be >= 1");
  for (int d : depths())
    need(d >= 0, "disc.key_depths", key_depths, "must list block indices >= 0");
}

}  // namespace rae::train
