// One stage-1 training step against the PyTorch transcription of the release
// (tests/reference/make_stage1_golden.py, float64): the generator's losses (L1, LPIPS, GAN),
// the adaptive lambda and every decoder gradient; the discriminator's hinge loss, accuracy,
// logits and every head gradient, and the spectral-norm vectors after its two power iterations.
// The trainer runs the real objective (train/stage1.h) on the CPU with the golden's draws.
#include <gtest/gtest.h>

#include "core/device.h"
#include "io/safetensors.h"
#include "stage1/stage1_test_util.h"
#include "train/trainer.h"

namespace rae::test::stage1 {
namespace {

namespace st = rae::safetensors;

struct GoldenStep {
  st::File g = st::load(golden_path("stage1/step.safetensors"));
  std::unique_ptr<TensorImageStream> stream;
  std::unique_ptr<train::Trainer> trainer;
  train::Stage1Objective* obj = nullptr;
  train::StepStats stats;

  explicit GoldenStep(const std::string& device = "cpu") {
    Tensor images = g.get("in.images").clone();
    stream = std::make_unique<TensorImageStream>(images);
    auto o = std::make_unique<train::Stage1Objective>(golden_stage1_config(), tiny_encoder_dir());
    obj = o.get();
    train::TrainConfig tc = golden_train_config(images.dim(0));
    tc.device = device;  // precision fp32: FMA math, no TF32
    trainer = std::make_unique<train::Trainer>(tc, *stream, "", nullptr, std::move(o));
    fill_decoder(decoder());
    fill_heads(heads());
    // The spectral-norm start vectors (PyTorch's column order for v).
    nn::ParamStore& hp = heads().params();
    const int64_t C = heads().disc_config().channels;
    for (size_t i = 0; i < hp.buffer_names().size(); ++i) {
      const std::string& n = hp.buffer_names()[i];
      Tensor v = g.get("init." + n).clone();
      const int64_t K = v.numel() / C;
      if (n.ends_with("weight_v") && v.numel() > C) v = v_from_torch(v, C, K);
      Tensor(hp.buffer(static_cast<int>(i))).copy_from(v);
    }
    train::Stage1Draws d;
    d.noise = g.get("draw.noise").clone();
    for (int k = 0; k < 3; ++k) {
      Tensor a = g.get("draw.aug" + std::to_string(k));
      d.aug[k].assign(a.data<float>(), a.data<float>() + a.numel());
      for (int j = 0; j < 3; ++j)
        d.flags[k][j] = g.get("draw.flags").data<int32_t>()[3 * k + j] != 0;
    }
    obj->set_draws(d);
    stats = trainer->step();
  }
  models::VitDecoder& decoder() {
    return dynamic_cast<models::VitDecoder&>(*trainer->model("decoder").module);
  }
  models::DinoDiscHeads& heads() {
    return dynamic_cast<models::DinoDiscHeads&>(*trainer->model("disc").module);
  }
  double out(const std::string& k) { return g.get("out." + k).item(0); }
};

GoldenStep& step() {
  static GoldenStep s;
  return s;
}

double max_abs(const Tensor& t) {
  Tensor x = t.to(Device::cpu()).cast(DType::F64);
  double m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::fabs(x.data<double>()[i]));
  return m;
}

// max |a - b| / max(max |b|, floor): the error relative to the tensor's scale, or to `floor` for
// tensors whose exact value is (nearly) zero: the key biases (softmax ignores them) and the conv
// biases in front of a per-sample normalisation get rounding noise only.
double rel_err(const Tensor& a, const Tensor& b, double floor = 1e-12) {
  Tensor x = a.to(Device::cpu()).cast(DType::F64), y = b.to(Device::cpu()).cast(DType::F64);
  double e = 0, m = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    e = std::max(e, std::fabs(x.data<double>()[i] - y.data<double>()[i]));
    m = std::max(m, std::fabs(y.data<double>()[i]));
  }
  return e / std::max(m, floor);
}

// 1e-4 of the largest reference gradient of a model (the floor of rel_err).
double grad_floor(const st::File& g, const std::string& prefix) {
  double m = 0;
  for (const std::string& n : g.names)
    if (n.rfind(prefix, 0) == 0) m = std::max(m, max_abs(g.get(n)));
  return 1e-4 * m;
}

TEST(Stage1Golden, GeneratorLossesAndLambda) {
  GoldenStep& s = step();
  for (const char* k : {"l1", "lpips", "gan", "lambda", "loss"}) {
    const double ref = s.out(k);
    EXPECT_NEAR(s.stats.metrics.at(k), ref, 2e-4 * std::max(1.0, std::fabs(ref))) << k;
  }
  EXPECT_GT(s.out("lambda"), 0.0);
}

TEST(Stage1Golden, EveryDecoderGradient) {
  GoldenStep& s = step();
  nn::ParamStore& ps = s.decoder().params();
  const double floor = grad_floor(s.g, "grad.decoder.");
  int checked = 0;
  for (size_t id = 0; id < ps.params().size(); ++id) {
    const std::string& n = ps.params()[id].name;
    SCOPED_TRACE(n);
    ASSERT_TRUE(s.g.contains("grad.decoder." + n));
    EXPECT_LT(rel_err(ps.grad(static_cast<int>(id)), s.g.get("grad.decoder." + n), floor), 2e-3);
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(ps.params().size()));
}

TEST(Stage1Golden, DiscriminatorLossAccuracyLogits) {
  GoldenStep& s = step();
  for (const char* k : {"disc_loss", "logits_real", "logits_fake"})
    EXPECT_NEAR(s.stats.metrics.at(k), s.out(k), 2e-4 * std::max(1.0, std::fabs(s.out(k)))) << k;
  EXPECT_DOUBLE_EQ(s.stats.metrics.at("disc_accuracy"), s.out("disc_accuracy"));
}

TEST(Stage1Golden, EveryHeadGradientAndSpectralVectors) {
  GoldenStep& s = step();
  nn::ParamStore& ps = s.heads().params();
  const int64_t C = s.heads().disc_config().channels;
  const double floor = grad_floor(s.g, "grad.disc.");
  for (size_t id = 0; id < ps.params().size(); ++id) {
    const auto& p = ps.params()[id];
    SCOPED_TRACE(p.name);
    Tensor ref = s.g.get("grad.disc." + p.name).clone();
    if (p.name.ends_with("weight_orig")) ref = conv1d_from_torch(ref);
    EXPECT_LT(rel_err(ps.grad(static_cast<int>(id)), ref, floor), 2e-3);
  }
  for (size_t i = 0; i < ps.buffer_names().size(); ++i) {
    const std::string& n = ps.buffer_names()[i];
    SCOPED_TRACE(n);
    Tensor ref = s.g.get("after." + n).clone();
    if (n.ends_with("weight_v") && ref.numel() > C) ref = v_from_torch(ref, C, ref.numel() / C);
    EXPECT_LT(rel_err(ps.buffer(static_cast<int>(i)), ref), 1e-4);
  }
}

// The same step on the GPU (fp32): the CUDA ops, cuDNN convolutions and attention of every part.
TEST(Stage1Golden, CudaStepMatchesGolden) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  GoldenStep s("cuda");
  for (const char* k :
       {"l1", "lpips", "gan", "lambda", "loss", "disc_loss", "logits_real", "logits_fake"}) {
    const double ref = s.out(k);
    EXPECT_NEAR(s.stats.metrics.at(k), ref, 1e-3 * std::max(1.0, std::fabs(ref))) << k;
  }
  for (auto* m : {&s.decoder().params(), &s.heads().params()}) {
    const bool dec = m == &s.decoder().params();
    const std::string pre = dec ? "grad.decoder." : "grad.disc.";
    const double floor = grad_floor(s.g, pre);
    for (size_t id = 0; id < m->params().size(); ++id) {
      const auto& p = m->params()[id];
      SCOPED_TRACE(p.name);
      Tensor ref = s.g.get(pre + p.name).clone();
      if (!dec && p.name.ends_with("weight_orig")) ref = conv1d_from_torch(ref);
      EXPECT_LT(rel_err(m->grad(static_cast<int>(id)), ref, floor), 1e-2);
    }
  }
}

}  // namespace
}  // namespace rae::test::stage1
