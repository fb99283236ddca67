#include "train/stage1.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/image_preprocess.h"
#include "models/registry.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/image.h"
#include "ops/loss.h"
#include "ops/noise.h"

namespace rae::train {

namespace {

std::vector<double> vec3(const std::array<float, 3>& a) {
  return {a[0], a[1], a[2]};
}
const std::vector<double> kTwo = {2.0, 2.0, 2.0}, kMinusOne = {-1.0, -1.0, -1.0};

int64_t epoch_steps(double epochs, int64_t steps_per_epoch) {
  return static_cast<int64_t>(epochs * static_cast<double>(steps_per_epoch));
}

}  // namespace

Stage1Schedule Stage1Schedule::of(const Stage1Config& c, int64_t spe) {
  Stage1Schedule s;
  s.lpips_start = epoch_steps(c.lpips_start_epoch, spe);
  s.gan_start = epoch_steps(c.disc_start_epoch, spe);
  s.disc_start = epoch_steps(c.disc_update_start_epoch, spe);
  return s;
}

// The tensors of one micro-batch that both passes use (allocated before the arena mark).
struct Stage1Objective::Batch {
  int64_t B = 0;
  Tensor x01, x_pm;  // (B, S, S, 3) F32: images in [0, 1] and in [-1, 1]
  Tensor z;          // (B, T, C) F32 tokens, no noise
  Tensor ids;        // (B) I64 on the device
  nn::Arena::Mark mark;
};

Stage1Objective::Stage1Objective(const Stage1Config& cfg, const std::string& encoder)
    : cfg_(cfg), encoder_source_(encoder) {
  cfg_.validate();
}

std::vector<ModelRole> Stage1Objective::roles(const TrainConfig& cfg, const BatchStream& data) {
  seed_ = static_cast<uint64_t>(cfg.seed);
  RAE_CHECK(data.grid() == cfg_.image_size && data.channels() == 3, "stage 1: ", data.describe(),
            " gives ", data.grid(), " px images, the config's images.image_size is ",
            cfg_.image_size);
  models::EncoderLoadOptions eo;
  eo.input_size = cfg_.encoder_input_size;
  encoder_ = models::VitEncoder::load(encoder_source_, eo);
  enc_cfg_ = encoder_.config();
  const int64_t g = enc_cfg_.grid(), S = cfg_.image_size;
  RAE_CHECK(S % g == 0, "stage 1: images of ", S, " px do not split into the encoder's ", g, "x", g,
            " token grid (images.image_size must be a multiple of ", g, ")");
  // The decoder: the preset, the config's overrides, then what the encoder and the images fix.
  models::ModelSpec dec = models::model_preset(cfg_.decoder_preset);
  RAE_CHECK(dec.type == models::kVitDecoderType, "decoder.preset '", cfg_.decoder_preset, "' is a ",
            dec.type, ", not a ViT decoder preset");
  dec = models::with_overrides(dec, nlohmann::json::parse(cfg_.decoder_overrides));
  dec = models::with_overrides(dec, {{"latent_channels", enc_cfg_.hidden},
                                     {"grid", g},
                                     {"patch", S / g},
                                     {"pixel_mean", enc_cfg_.mean},
                                     {"pixel_std", enc_cfg_.std}});
  // The discriminator: its frozen trunk (read here for its width) and the heads.
  dino_ =
      models::VitEncoder::load_dino(cfg_.dino, cfg_.recipe, cfg_.disc_input_size, Device::cpu());
  taps_ = {static_cast<int>(dino_.config().layers) - 1};  // the last block first, as the release
  for (int d : cfg_.depths())
    if (d < dino_.config().layers) taps_.push_back(d);
  models::DinoDiscConfig dc;
  dc.channels = dino_.config().hidden;
  dc.heads = static_cast<int64_t>(taps_.size());
  dc.kernel_size = cfg_.kernel_size;
  dc.norm_eps = cfg_.norm_eps;
  const int64_t spe = data.steps_per_epoch();
  sched_ = Stage1Schedule::of(cfg_, spe);
  TrainConfig dcfg = cfg;  // the discriminator's optimizer and schedule ([disc] keys)
  dcfg.lr = cfg_.disc_lr, dcfg.beta1 = cfg_.disc_beta1, dcfg.beta2 = cfg_.disc_beta2;
  dcfg.eps = cfg_.disc_eps, dcfg.weight_decay = cfg_.disc_weight_decay;
  dcfg.schedule = cfg_.disc_schedule, dcfg.warmup_steps = 0, dcfg.decay_end_steps = 0;
  dcfg.warmup_epochs = cfg_.disc_warmup_epochs, dcfg.decay_end_epoch = cfg_.disc_decay_end_epoch;
  dcfg.final_lr = cfg_.disc_final_lr, dcfg.warmup_from_zero = cfg_.disc_warmup_from_zero;
  dcfg.clip_grad = 0;  // the release clips neither
  ModelRole disc{"disc",
                 {"DinoDisc", nlohmann::json::parse(dc.to_json())},
                 OptimSettings::from_config(dcfg, spe),
                 sched_.disc_start};
  return {ModelRole{"decoder", dec, OptimSettings::from_config(cfg, spe)}, disc};
}

void Stage1Objective::attach(const std::vector<TrainedModel*>& models, const StepEnv& env) {
  RAE_CHECK(models.size() == 2, "stage 1 trains a decoder and a discriminator, got ", models.size(),
            " models");
  decoder_model_ = models[0];
  disc_model_ = models[1];
  decoder_ = &models::module_as<models::VitDecoder>(*models[0]->module, "ViTDecoder", "stage 1");
  disc_ = &models::module_as<models::DinoDiscHeads>(*models[1]->module, "DinoDisc", "stage 1");
  env_ = env;
  encoder_.to(env.device);
  dino_.to(env.device);
  lpips_.emplace(models::Lpips::open(cfg_.lpips, env.device, env.activation_dtype));
  // Large chunks on the GPU: the generator and discriminator passes allocate different
  // sequences, and a request that does not fit the current chunk moves on to the next.
  const size_t chunk = env.device.is_cuda() ? size_t(512) << 20 : size_t(64) << 20;
  arena_ = nn::Arena(env.device, chunk, env.activation_dtype);
}

Tensor Stage1Objective::encode(const Tensor& images) {
  // The release's RAE.encode on ToTensor'd crops: bicubic to the encoder's input, normalised
  // (data::to_encoder_input, the cache job's function), on the host in parallel.
  const int64_t B = images.dim(0), S = images.dim(1), E = enc_cfg_.input_size;
  Tensor px = Tensor::empty({B, 3, E, E});
  tbb::parallel_for(int64_t{0}, B, [&](int64_t b) {
    data::Image img = data::Image::make(static_cast<int>(S), static_cast<int>(S), 3);
    std::copy_n(images.data<uint8_t>() + b * S * S * 3, S * S * 3, img.pixels.data());
    std::vector<float> v =
        data::to_encoder_input(img, static_cast<int>(E), enc_cfg_.mean, enc_cfg_.std);
    std::copy(v.begin(), v.end(), px.data<float>() + b * 3 * E * E);
  });
  return encoder_.forward(px.to(env_.device));
}

Stage1Objective::Batch Stage1Objective::prepare(const MicroBatch& mb) {
  const Tensor& img = mb.data.latents;
  RAE_CHECK(img.ndim() == 4 && img.dtype() == DType::U8 && img.dim(1) == cfg_.image_size &&
                img.dim(2) == cfg_.image_size && img.dim(3) == 3,
            "stage 1: the data batch must be u8 images (B, ", cfg_.image_size, ", ",
            cfg_.image_size, ", 3), got ", img.str());
  nn::Arena& A = arena_;
  A.reset();
  Batch b;
  b.B = img.dim(0);
  Tensor host = Tensor::empty(img.shape());
  const uint8_t* src = img.data<uint8_t>();
  float* dst = host.data<float>();
  for (int64_t i = 0; i < img.numel(); ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
  b.x01 = A.empty(img.shape(), DType::F32);
  b.x01.copy_from(host);
  b.x_pm = A.empty(img.shape(), DType::F32);
  ops::channel_affine_forward(b.x_pm, b.x01, kTwo, kMinusOne);
  Tensor z = encode(img);
  b.z = A.empty(z.shape(), DType::F32);
  b.z.copy_from(z);
  b.ids = A.empty({b.B}, DType::I64);
  b.ids.copy_from(mb.data.ids);
  b.mark = A.mark();
  return b;
}

models::DiffAugParams Stage1Objective::aug_params(const MicroBatch& mb, int call, int64_t B) {
  const int64_t S = cfg_.image_size;
  if (draws_)
    return models::diffaug_params(draws_->aug[call], B, S, S, draws_->flags[call][0],
                                  draws_->flags[call][1], draws_->flags[call][2], cfg_.cutout)
        .to(env_.device);
  models::DiffAugConfig c{cfg_.aug_prob, cfg_.cutout, seed_};
  return models::draw_diffaug(c, static_cast<uint64_t>(mb.step), call, mb.data.ids, S, S)
      .to(env_.device);
}

void Stage1Objective::disc_forward(DiscPass& p, const Tensor& x, bool save_trunk,
                                   int power_iterations) {
  nn::Arena& A = arena_;
  const int64_t B = x.dim(0), Sd = dino_.config().input_size;
  Tensor xa = A.empty(x.shape(), DType::F32);
  models::diffaug_forward(A, xa, x, p.aug);
  // FrozenDINONoDrop: bilinear resize to its input, then x * (0.5 / std) + (0.5 - mean) / std.
  p.pixels = A.empty({B, Sd, Sd, 3}, DType::F32);
  ops::resize_bilinear_forward(p.pixels, xa);
  std::vector<double> sc(3), sh(3);
  for (int c = 0; c < 3; ++c) {
    sc[c] = 0.5 / dino_.config().std[c];
    sh[c] = (0.5 - dino_.config().mean[c]) / dino_.config().std[c];
  }
  ops::channel_affine_forward(p.pixels, p.pixels, sc, sh);
  p.feats = dino_.forward_blocks(A, p.pixels, taps_, save_trunk ? &p.trunk : nullptr);
  p.logits = A.empty({static_cast<int64_t>(taps_.size()), B, p.feats[0].dim(1)}, DType::F32);
  disc_->forward(A, p.feats, p.logits, power_iterations, &p.heads);
}

void Stage1Objective::disc_input_backward(DiscPass& p, const Tensor& dlogits, const Tensor& dx) {
  nn::Arena& A = arena_;
  std::vector<Tensor> dfeats;
  for (const Tensor& f : p.feats) dfeats.push_back(A.zeros(f.shape(), DType::F32));
  disc_->backward(A, p.heads, dlogits, dfeats);
  Tensor dpix = A.zeros(p.pixels.shape(), DType::F32);
  dino_.backward_input(A, p.trunk, dfeats, dpix);
  std::vector<double> sc(3);
  for (int c = 0; c < 3; ++c) sc[c] = 0.5 / dino_.config().std[c];
  Tensor dres = A.zeros(p.pixels.shape(), DType::F32);
  ops::channel_affine_backward(dres, dpix, sc);
  Tensor daug = A.zeros(dx.shape(), DType::F32);
  ops::resize_bilinear_backward(daug, dres);
  models::diffaug_backward(A, dx, daug, p.aug);
}

void Stage1Objective::generator_pass(const MicroBatch& mb, Batch& b, Metrics& m) {
  nn::Arena& A = arena_;
  const int64_t B = b.B, S = cfg_.image_size;
  const double share = mb.share;
  const bool use_lpips = sched_.lpips(mb.step) && cfg_.perceptual_weight > 0;
  const bool use_gan = sched_.gan(mb.step) && cfg_.disc_weight > 0;
  // Noise augmentation on a copy of the tokens (the discriminator pass decodes the clean ones).
  Tensor z = A.empty(b.z.shape(), DType::F32);
  z.copy_from(b.z);
  if (draws_) {
    Tensor n = A.empty(z.shape(), DType::F32);
    n.copy_from(draws_->noise);
    ops::add_(z, n);
  } else if (cfg_.noise_tau > 0) {
    Tensor sigma = A.empty({B}, DType::F32);
    ops::noise_augment_(
        z, b.ids, ops::NoiseAugKey{seed_, static_cast<uint64_t>(mb.step), cfg_.noise_tau}, sigma);
    m["noise_sigma"] += share * ops::mean_forward(sigma);
  }
  Tensor out = A.empty({B, 3, S, S});
  decoder_->forward(A, out, z);
  // recon = out * std + mean (RAE.decode), channels last, F32.
  const std::vector<double> mean = vec3(enc_cfg_.mean), stdv = vec3(enc_cfg_.std);
  Tensor rec = A.empty({B, S, S, 3}, DType::F32);
  ops::patchify(rec.view({B, S * S, 3}), out, 1);  // NCHW -> NHWC (patch 1: a transpose)
  ops::channel_affine_forward(rec, rec, stdv, mean);
  Tensor rec_pm = A.empty(rec.shape(), DType::F32);
  ops::channel_affine_forward(rec_pm, rec, kTwo, kMinusOne);
  // d(share * L_rec) / d rec.
  const double l1 = ops::l1_forward(rec, b.x01);
  Tensor drec = A.zeros(rec.shape(), DType::F32);
  ops::l1_backward(drec, rec, b.x01, share);
  double lp = 0;
  if (use_lpips) {
    lp = lpips_->forward(A, rec_pm, b.x_pm);
    Tensor dpm = A.zeros(rec.shape(), DType::F32);
    lpips_->backward(A, dpm, cfg_.perceptual_weight * share);
    ops::channel_affine_backward(drec, dpm, kTwo);
  }
  const double rec_loss = l1 + cfg_.perceptual_weight * lp;
  // Pixel gradients -> decoder output gradients (x std, NCHW, the activation dtype).
  auto to_out_grad = [&](const Tensor& d) {
    Tensor t = A.zeros(d.shape(), DType::F32);
    ops::channel_affine_backward(t, d, stdv);
    Tensor o = A.empty(out.shape());
    ops::unpatchify(o, t.view({B, S * S, 3}), 1);  // NHWC -> NCHW
    return o;
  };
  Tensor dout = to_out_grad(drec);
  double gan = 0, lambda = 0;
  if (use_gan) {
    disc_model_->params->set_trainable(false);  // gradients to the pixels only
    DiscPass p;
    p.aug = aug_params(mb, 0, B);
    disc_forward(p, rec_pm, /*save_trunk=*/true, /*power_iterations=*/0);
    gan = -ops::mean_forward(p.logits);
    Tensor dlogits = A.zeros(p.logits.shape(), DType::F32);
    ops::mean_backward(dlogits, -share);
    Tensor dpm = A.zeros(rec.shape(), DType::F32);
    disc_input_backward(p, dlogits, dpm);
    disc_model_->params->set_trainable(true);
    Tensor dgan = A.zeros(rec.shape(), DType::F32);
    ops::channel_affine_backward(dgan, dpm, kTwo);
    Tensor dout_gan = to_out_grad(dgan);
    // lambda from the two losses' gradients at decoder_pred.weight, summed over the ranks.
    const auto& dc = decoder_->decoder_config();
    Tensor g = A.zeros({2, dc.patch_dim(), dc.width}, DType::F32);
    decoder_->pred_weight_grad(A, dout, g.select(0, 0));
    decoder_->pred_weight_grad(A, dout_gan, g.select(0, 1));
    if (env_.comm && env_.world_size > 1) env_.comm->all_reduce(g);
    const double n_rec = std::sqrt(ops::sum_squares(g.select(0, 0)));
    const double n_gan = std::sqrt(ops::sum_squares(g.select(0, 1)));
    lambda = std::clamp(n_rec / (n_gan + 1e-6), 0.0, cfg_.max_d_weight);
    ops::add_(dout, dout_gan, cfg_.disc_weight * lambda);
  }
  decoder_->backward(A, dout);
  last_lambda_ = lambda;
  m["loss"] += share * (rec_loss + cfg_.disc_weight * lambda * gan);
  m["l1"] += share * l1;
  m["lpips"] += share * lp;
  m["rec_loss"] += share * rec_loss;
  m["gan"] += share * gan;
  m["lambda"] += share * lambda;
}

void Stage1Objective::discriminator_pass(const MicroBatch& mb, Batch& b, Metrics& m) {
  nn::Arena& A = arena_;
  const int64_t B = b.B, S = cfg_.image_size;
  const double share = mb.share;
  // The release's fresh reconstruction (decoder in eval mode: no noise), discretised to 8 bits.
  Tensor out = A.empty({B, 3, S, S});
  decoder_->infer(A, out, b.z);
  Tensor fake = A.empty({B, S, S, 3}, DType::F32);
  ops::patchify(fake.view({B, S * S, 3}), out, 1);
  std::vector<double> sc(3), sh(3);  // x * std + mean, then * 2 - 1
  for (int c = 0; c < 3; ++c) {
    sc[c] = 2.0 * enc_cfg_.std[c];
    sh[c] = 2.0 * enc_cfg_.mean[c] - 1.0;
  }
  ops::channel_affine_forward(fake, fake, sc, sh);
  ops::quantize_pm1(fake, fake);
  DiscPass pf, pr;
  pf.aug = aug_params(mb, 1, B);
  pr.aug = aug_params(mb, 2, B);
  disc_forward(pf, fake, false, 1);    // discriminator(fake, real): fake first, one power
  disc_forward(pr, b.x_pm, false, 1);  // iteration per forward
  const double real_term = ops::hinge_forward(pr.logits, -1.0);
  const double fake_term = ops::hinge_forward(pf.logits, 1.0);
  Tensor df = A.zeros(pf.logits.shape(), DType::F32), dr = A.zeros(pr.logits.shape(), DType::F32);
  ops::hinge_backward(df, pf.logits, 1.0, 0.5 * share);
  ops::hinge_backward(dr, pr.logits, -1.0, 0.5 * share);
  disc_->backward(A, pf.heads, df, {});
  disc_->backward(A, pr.heads, dr, {});
  const double acc = static_cast<double>(ops::count_greater(pr.logits, pf.logits)) /
                     static_cast<double>(pr.logits.numel());
  m["disc_loss"] += share * 0.5 * (real_term + fake_term);
  m["disc_accuracy"] += share * acc;
  m["logits_real"] += share * ops::mean_forward(pr.logits);
  m["logits_fake"] += share * ops::mean_forward(pf.logits);
}

Metrics Stage1Objective::micro_step(const MicroBatch& mb) {
  Metrics m;
  Batch b = prepare(mb);
  generator_pass(mb, b, m);
  if (sched_.disc(mb.step)) {
    // The generator pass is done (its gradients are in the sharding core's buffers): its
    // activations make room for the discriminator's.
    arena_.rewind(b.mark);
    discriminator_pass(mb, b, m);
  }
  return m;
}

Tensor Stage1Objective::reconstruct(models::VitDecoder& dec, const Tensor& images) {
  nn::Arena& A = arena_;
  A.reset();
  const int64_t B = images.dim(0), S = cfg_.image_size;
  Tensor z = encode(images);
  Tensor out = A.empty({B, 3, S, S});
  dec.infer(A, out, z);
  Tensor rec = A.empty({B, S, S, 3}, DType::F32);
  ops::patchify(rec.view({B, S * S, 3}), out, 1);  // NCHW -> NHWC (patch 1: a transpose)
  ops::channel_affine_forward(rec, rec, vec3(enc_cfg_.std), vec3(enc_cfg_.mean));
  Tensor host = rec.to(Device::cpu());
  Tensor u8 = Tensor::empty({B, S, S, 3}, DType::U8);
  const float* p = host.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    // torchvision's to-uint8: clamp to [0, 1], * 255, round (ADM: np.clip(x * 255 + 0.5)).
    const float v = std::min(std::max(p[i], 0.0f), 1.0f);
    u8.data<uint8_t>()[i] = static_cast<uint8_t>(std::lround(v * 255.0f));
  }
  return u8;
}

void Stage1Objective::artifacts(std::map<std::string, Tensor>& tensors,
                                std::map<std::string, std::string>& metadata) const {
  metadata["encoder"] = encoder_.id();
  metadata["encoder_weights"] = encoder_.weights_source();
}

nlohmann::json Stage1Objective::describe() const {
  return {{"encoder", encoder_.id()},
          {"encoder_input_size", enc_cfg_.input_size},
          {"discriminator", dino_.id()},
          {"disc_taps", taps_},
          {"lpips", cfg_.lpips},
          {"lpips_start_step", sched_.lpips_start},
          {"gan_start_step", sched_.gan_start},
          {"disc_start_step", sched_.disc_start},
          {"noise_tau", cfg_.noise_tau},
          {"perceptual_weight", cfg_.perceptual_weight},
          {"disc_weight", cfg_.disc_weight}};
}

}  // namespace rae::train
