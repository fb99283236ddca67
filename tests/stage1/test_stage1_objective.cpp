// The stage-1 objective's parts: the schedule (LPIPS from E0, discriminator updates from E1 with
// its optimizer and learning-rate schedule starting there, the GAN term from E2), the adaptive
// weight lambda (the last layer's gradient from the output-side gradient equals a backward's;
// the clamp), the DiffAug parameters of the release's formulas, and the image stream's crops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "data/image_decode.h"
#include "data/image_encode.h"
#include "io/safetensors.h"
#include "models/diffaug.h"
#include "models/lpips.h"
#include "models/vit_encoder.h"
#include "ops/elementwise.h"
#include "stage1/stage1_test_util.h"
#include "train/image_stream.h"
#include "train/trainer.h"

namespace rae::test::stage1 {
namespace {

Tensor random_images(int64_t n, int64_t s, uint64_t seed) {
  Tensor u = rand_uniform({n, s, s, 3}, seed, 0.0, 256.0);
  Tensor t = Tensor::empty({n, s, s, 3}, DType::U8);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<uint8_t>()[i] = static_cast<uint8_t>(std::min(255.0f, u.data<float>()[i]));
  return t;
}

struct TinyRun {
  std::unique_ptr<TensorImageStream> stream;
  std::unique_ptr<train::Trainer> trainer;
  train::Stage1Objective* obj = nullptr;
  TinyRun(const train::Stage1Config& c, int64_t n_images, int64_t batch,
          const train::TrainConfig* base = nullptr) {
    stream = std::make_unique<TensorImageStream>(random_images(n_images, c.image_size, 5));
    auto o = std::make_unique<train::Stage1Objective>(c, tiny_encoder_dir());
    obj = o.get();
    train::TrainConfig t = base ? *base : golden_train_config(batch);
    trainer = std::make_unique<train::Trainer>(t, *stream, "", nullptr, std::move(o));
  }
};

TEST(Stage1Schedule, EpochsToSteps) {
  train::Stage1Config c;
  c.lpips_start_epoch = 0.5;
  c.disc_update_start_epoch = 6;
  c.disc_start_epoch = 8;
  const train::Stage1Schedule s = train::Stage1Schedule::of(c, 100);
  EXPECT_EQ(s.lpips_start, 50);
  EXPECT_EQ(s.disc_start, 600);
  EXPECT_EQ(s.gan_start, 800);
  EXPECT_FALSE(s.gan(799));
  EXPECT_TRUE(s.gan(800));
  EXPECT_TRUE(s.disc(600));
}

// 8 images, batch 2: 4 steps per epoch; LPIPS from step 2, discriminator updates from 4, the
// GAN term from 6.
TEST(Stage1Schedule, TermsAndDiscriminatorOptimizerStartWhenScheduled) {
  train::Stage1Config c = golden_stage1_config();
  c.lpips_start_epoch = 0.5;
  c.disc_update_start_epoch = 1;
  c.disc_start_epoch = 1.5;
  c.disc_schedule = "linear";
  c.disc_warmup_epochs = 1;  // 4 steps from 0 (warmup_from_zero): lr = (k + 1) / 4 * base
  c.disc_decay_end_epoch = 1;
  TinyRun r(c, 8, 2);
  train::TrainedModel& disc = r.trainer->model("disc");
  for (int64_t step = 0; step < 8; ++step) {
    SCOPED_TRACE(step);
    const train::StepStats s = r.trainer->step();
    EXPECT_EQ(s.metrics.at("lpips") > 0, step >= 2);
    EXPECT_EQ(s.metrics.count("disc_loss") == 1, step >= 4);
    EXPECT_EQ(s.metrics.at("gan") != 0, step >= 6);
    EXPECT_EQ(s.metrics.at("lambda") > 0, step >= 6);
    EXPECT_GT(s.metrics.at("l1"), 0);
    // The discriminator's AdamW counts only its own updates; its schedule starts at step 4.
    EXPECT_EQ(disc.optimizer->step_count(), std::max<int64_t>(0, step - 3));
    const double lr = s.metrics.at("lr.disc");
    if (step < 4)
      EXPECT_EQ(lr, 0.0);
    else
      EXPECT_NEAR(lr, c.disc_lr * std::min(1.0, (step - 4 + 1) / 4.0), 1e-12);
    if (step < 4) {
      EXPECT_EQ(s.metrics.at("grad_norm.disc"), 0.0);  // no discriminator loss yet
    } else {
      EXPECT_GT(s.metrics.at("grad_norm.disc"), 0.0);
      EXPECT_GE(s.metrics.at("disc_accuracy"), 0.0);
      EXPECT_LE(s.metrics.at("disc_accuracy"), 1.0);
    }
  }
}

// The total loss jumps by design when LPIPS starts (here x100 weight: far above the guard's
// factor); the loss-spike guard watches the L1 term instead and lets the run go on.
TEST(Stage1Train, LossSpikeGuardWatchesL1) {
  train::Stage1Config c = golden_stage1_config();
  c.lpips_start_epoch = 0.5;  // from step 2 (4 steps per epoch)
  c.disc_update_start_epoch = 10;
  c.disc_start_epoch = 10;
  c.perceptual_weight = 100;
  train::TrainConfig t = golden_train_config(2);
  t.loss_spike_factor = 3;
  t.loss_spike_warmup = 1;
  TinyRun r(c, 8, 2, &t);
  EXPECT_EQ(r.obj->guard_metric(), "l1");
  double before = 0, after = 0;
  for (int64_t step = 0; step < 6; ++step) {
    SCOPED_TRACE(step);
    train::StepStats s;
    ASSERT_NO_THROW(s = r.trainer->step());
    (step < 2 ? before : after) = s.metrics.at("loss");
  }
  EXPECT_GT(after, t.loss_spike_factor * before);  // what the guard would have stopped on
}

TEST(Stage1Lambda, ClampedToMaxDWeight) {
  train::Stage1Config c = golden_stage1_config();
  c.max_d_weight = 1e-3;
  TinyRun r(c, 2, 2);
  const train::StepStats s = r.trainer->step();
  EXPECT_EQ(s.metrics.at("lambda"), 1e-3);
  EXPECT_NEAR(s.metrics.at("loss"),
              s.metrics.at("rec_loss") + c.disc_weight * 1e-3 * s.metrics.at("gan"), 1e-9);
}

// decoder_pred's weight gradient from the output-side gradient (pred_weight_grad) is the one a
// backward accumulates: lambda needs the two losses' gradients without two backwards.
TEST(Stage1Lambda, LastLayerGradientFromOutputGradientMatchesBackward) {
  models::VitDecoderConfig cfg = models::decoder_preset("ViT-micro");
  models::VitDecoder dec(cfg);
  dec.init(3);
  fill_decoder(dec);
  nn::Arena A;
  const int64_t B = 2, S = cfg.image_size();
  Tensor z = randn({B, cfg.tokens(), cfg.latent_channels}, 1);
  Tensor out = Tensor::empty({B, 3, S, S});
  dec.forward(A, out, z);
  Tensor dout = randn(out.shape(), 2);
  Tensor dw = Tensor::zeros({cfg.patch_dim(), cfg.width});
  dec.pred_weight_grad(A, dout, dw);
  dec.params().zero_grad();
  dec.backward(A, dout);
  const int id = dec.params().find("decoder_pred.weight");
  ASSERT_GE(id, 0);
  Tensor g = dec.params().grad(id);
  EXPECT_LT(max_abs_diff(dw, g), 1e-5 * std::sqrt(ops::sum_squares(g)));
  // And it is linear in dout: twice the gradient, twice the result.
  Tensor dw2 = Tensor::zeros(dw.shape());
  Tensor d2 = dout.clone();
  ops::scale_(d2, 2.0);
  dec.pred_weight_grad(A, d2, dw2);
  ops::add_(dw2, dw, -2.0);
  EXPECT_LT(std::sqrt(ops::sum_squares(dw2)), 1e-5 * std::sqrt(ops::sum_squares(dw)));
}

// The release's DiffAug parameters: translation by floor(r (2d + 1)) - d with d = round(H / 8),
// colour factors, and cutout boxes clamped to the image as its clamped index grid.
TEST(Stage1DiffAug, ParametersFollowTheReleaseFormulas) {
  const std::vector<float> u = {0.0f, 0.999f, 0.25f, 0.5f, 0.75f, 0.0f, 0.999f,  // sample 0
                                0.5f, 0.5f,   0.5f,  0.0f, 0.0f,  0.5f, 0.5f};   // sample 1
  models::DiffAugParams p = models::diffaug_params(u, 2, 16, 16, true, true, true, 0.25);
  const int32_t* sh = p.shifts.data<int32_t>();
  EXPECT_EQ(sh[0], -2);  // d = 2: floor(0 * 5) - 2
  EXPECT_EQ(sh[1], 2);   // floor(0.999 * 5) - 2
  EXPECT_EQ(sh[2], 0);   // floor(0.5 * 5) - 2
  const float* f = p.factors.data<float>();
  EXPECT_FLOAT_EQ(f[0], -0.25f);
  EXPECT_FLOAT_EQ(f[1], 1.0f);
  EXPECT_FLOAT_EQ(f[2], 1.25f);
  EXPECT_FLOAT_EQ(f[4], 0.0f);  // saturation 2 * 0
  const int32_t* b = p.boxes.data<int32_t>();
  // c = 4, offsets floor(r * 17): sample 0 rows from 0 - 2 clamped, columns 16 - 2 .. 17 -> 15.
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[1], 2);   // rows clamp(-2..1) = 0, 1
  EXPECT_EQ(b[2], 14);  // columns 14..17 clamped to 15
  EXPECT_EQ(b[3], 16);
  EXPECT_EQ(b[4], 6);  // floor(0.5 * 17) = 8: rows 6..9
  EXPECT_EQ(b[5], 10);
  // cutout ratio 0 (the release's config) cuts nothing.
  models::DiffAugParams q = models::diffaug_params(u, 2, 16, 16, true, true, true, 0.0);
  EXPECT_EQ(q.boxes.data<int32_t>()[0], q.boxes.data<int32_t>()[1]);
}

// Crops: the shorter side resized to `resize` (PIL bicubic), a crop inside it, the same for a
// sample whatever the rank; different epochs draw other positions.
TEST(Stage1ImageStream, CropsAreKeyedBySampleAndEpoch) {
  const std::string dir = make_temp_dir("stage1_images");
  namespace fs = std::filesystem;
  for (int k = 0; k < 2; ++k) {
    fs::create_directories(fs::path(dir) / "train" / ("c" + std::to_string(k)));
    for (int i = 0; i < 4; ++i) {
      data::Image img = data::Image::make(40 + 8 * i, 30, 3);
      for (size_t j = 0; j < img.pixels.size(); ++j)
        img.pixels[j] = static_cast<uint8_t>((j * 7 + i * 31 + k * 101) % 256);
      data::write_png(
          (fs::path(dir) / "train" / ("c" + std::to_string(k)) / ("i" + std::to_string(i) + ".png"))
              .string(),
          img);
    }
  }
  train::ImageStream one(dir, 16, 24), two(dir, 16, 24);
  one.open({4, 0, 1, 9});
  two.open({4, 1, 2, 9});
  train::DataBatch a = one.next(), b = two.next();
  ASSERT_EQ(a.latents.shape(), Shape({4, 16, 16, 3}));
  ASSERT_EQ(b.latents.shape(), Shape({2, 16, 16, 3}));
  // Rank 1 of 2 holds the second half of the global batch, pixel for pixel.
  for (int64_t j = 0; j < 2; ++j) {
    EXPECT_EQ(a.ids.data<int64_t>()[2 + j], b.ids.data<int64_t>()[j]);
    EXPECT_EQ(0, std::memcmp(a.latents.data<uint8_t>() + (2 + j) * 768,
                             b.latents.data<uint8_t>() + j * 768, 768));
  }
  std::vector<uint8_t> e0(768), e1(768);
  one.load(3, 0, e0.data());
  one.load(3, 1, e1.data());
  EXPECT_NE(e0, e1);  // another epoch, another crop (of a 32x24 -> 24x32 resized image)
  EXPECT_EQ(one.steps_per_epoch(), 2);
  EXPECT_EQ(one.num_classes(), 2);
}

// Converted weight files (tools/convert_stage1_weights.py writes these names and layouts) load
// as the synthetic networks of the same tensors.
TEST(Stage1Weights, FilesLoadLikeTheSyntheticNetworks) {
  const std::string dir = make_temp_dir("stage1_weights");
  const std::string lp = dir + "/lpips.safetensors", dn = dir + "/dino.safetensors";
  safetensors::save(lp, models::Lpips::synthetic_tensors());
  safetensors::save(dn, models::synthetic_dino_tensors(models::dino_recipe("tiny")));
  models::Lpips a = models::Lpips::open(lp, Device::cpu()),
                b = models::Lpips::open("random", Device::cpu());
  Tensor x = rand_uniform({2, 16, 16, 3}, 3, -1.0, 1.0),
         y = rand_uniform({2, 16, 16, 3}, 4, -1.0, 1.0);
  nn::Arena A;
  EXPECT_EQ(a.forward(A, x, y), b.forward(A, x, y));
  models::VitEncoder d1 = models::VitEncoder::load_dino(dn, "tiny", 32, Device::cpu());
  models::VitEncoder d2 = models::VitEncoder::load_dino("random-tiny", "tiny", 32, Device::cpu());
  Tensor px = rand_uniform({2, 32, 32, 3}, 5, -1.0, 1.0);
  std::vector<Tensor> f1 = d1.forward_blocks(A, px, {11, 2}, nullptr);
  std::vector<Tensor> f2 = d2.forward_blocks(A, px, {11, 2}, nullptr);
  EXPECT_EQ(max_abs_diff(f1[0], f2[0]), 0.0);
  EXPECT_EQ(max_abs_diff(f1[1], f2[1]), 0.0);
  EXPECT_NE(error_of([&] { models::VitEncoder::load_dino(lp, "tiny", 32, Device::cpu()); }), "");
}

}  // namespace
}  // namespace rae::test::stage1
