// Trainer behaviour on the micro preset and an in-memory synthetic stream: exact gradient
// accumulation, exact resume, the NaN/Inf guard, checkpoint verification, config errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "support/util.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/flow_matching.h"
#include "train/trainer.h"

using namespace rae;
namespace fs = std::filesystem;

namespace {

train::TrainConfig micro_config() {
  train::TrainConfig c;
  c.preset = "DiTDH-micro";
  c.global_batch_size = 8;
  c.lr = 1e-3;
  c.steps = 4;
  c.progress = false;
  c.ckpt_every = 1000;
  return c;
}

train::SyntheticStream micro_stream() {
  return train::SyntheticStream(64, 4, 8, 5);
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using test::error_of;

}  // namespace

// K micro-batches of B/K must give the gradient of one batch of B: each micro-batch's loss
// gradient is scaled by micro/global. Tolerance 1e-5 relative: only the float summation order
// of the accumulated gradients differs.
TEST(Trainer, GradientAccumulationMatchesFullBatch) {
  auto run = [](int64_t K) {
    auto cfg = micro_config();
    cfg.grad_accum_steps = K;
    auto data = micro_stream();
    train::Trainer tr(cfg, data, "");
    auto s = tr.step();
    std::vector<float> g;  // one process owns every shard: the whole summed gradient
    for (const Tensor& grad : tr.model().params->grads()) {
      const float* p = grad.data<float>();
      g.insert(g.end(), p, p + grad.numel());
    }
    return std::make_pair(s.loss, g);
  };
  auto [loss1, g1] = run(1);
  auto [loss4, g4] = run(4);
  EXPECT_NEAR(loss1, loss4, 1e-6 * std::abs(loss1));
  ASSERT_EQ(g1.size(), g4.size());
  double max_ratio = 0, norm = 0;
  for (float v : g1) norm = std::max(norm, static_cast<double>(std::abs(v)));
  for (size_t i = 0; i < g1.size(); ++i)
    max_ratio = std::max(max_ratio,
                         std::abs(g1[i] - g4[i]) / (1e-7 + 1e-5 * std::abs(g1[i]) + 1e-6 * norm));
  EXPECT_LE(max_ratio, 1.0);
}

// 4 steps at once vs 2 + 2 with a restart from the checkpoint: byte-identical weights.
TEST(Trainer, ResumeIsBitExact) {
  std::string a = test::make_temp_dir("resume_a"), b = test::make_temp_dir("resume_b");
  {
    auto data = micro_stream();
    train::Trainer tr(micro_config(), data, a);
    tr.run();
  }
  {
    auto cfg = micro_config();
    cfg.steps = 2;
    auto data = micro_stream();
    train::Trainer tr(cfg, data, b);
    tr.run();
  }
  {
    auto data = micro_stream();
    train::Trainer tr(micro_config(), data, b);
    EXPECT_EQ(tr.resume(), 2);
    tr.run();
  }
  for (const char* f : {"shard-00000-of-00001.safetensors", "extras.safetensors", "state.json"})
    EXPECT_EQ(slurp(a + "/checkpoints/step-0000004/" + f),
              slurp(b + "/checkpoints/step-0000004/" + f))
        << f;
  EXPECT_EQ(slurp(a + "/metrics.jsonl").size() > 0, true);
}

// A corrupt newest checkpoint is reported and the previous one is used.
TEST(Trainer, CorruptNewestCheckpointIsSkipped) {
  std::string d = test::make_temp_dir("corrupt");
  auto cfg = micro_config();
  cfg.ckpt_every = 2;
  auto data = micro_stream();
  train::Trainer tr(cfg, data, d);
  tr.run();  // checkpoints at 2 and 4
  ASSERT_EQ(train::list_checkpoints(d).size(), 2u);
  {
    std::fstream f(d + "/checkpoints/step-0000004/shard-00000-of-00001.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x5a');
  }
  EXPECT_NE(train::verify_checkpoint(d + "/checkpoints/step-0000004"), "");
  auto best = train::latest_valid_checkpoint(d);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(fs::path(*best).filename().string(), "step-0000002");
}

namespace {
// Wraps a stream and poisons the latents of steps >= `from`.
class PoisonedStream : public train::SyntheticStream {
 public:
  PoisonedStream(int64_t from) : SyntheticStream(64, 4, 8, 5), from_(from) {}
  train::DataBatch next() override {
    train::DataBatch b = SyntheticStream::next();
    if (n_++ >= from_) b.latents.data<float>()[3] = std::nanf("");
    return b;
  }

 private:
  int64_t from_, n_ = 0;
};
}  // namespace

TEST(Trainer, NonFiniteStepsAreSkippedThenAbort) {
  auto cfg = micro_config();
  cfg.max_bad_steps = 3;
  cfg.steps = 10;
  PoisonedStream data(2);
  train::Trainer tr(cfg, data, "");
  EXPECT_FALSE(tr.step().skipped);
  EXPECT_FALSE(tr.step().skipped);
  // Weights must not change on a skipped step.
  auto first16 = [&] {
    const float* p = tr.model().params->masters()[0].data<float>();
    return std::vector<float>(p, p + 16);
  };
  std::vector<float> before = first16();
  auto s = tr.step();
  EXPECT_TRUE(s.skipped);
  EXPECT_EQ(before, first16());
  EXPECT_TRUE(tr.step().skipped);
  std::string err = error_of([&] { tr.step(); });
  EXPECT_NE(err.find("non-finite steps in a row"), std::string::npos) << err;
  EXPECT_NE(err.find("train.max_bad_steps"), std::string::npos) << err;
  EXPECT_EQ(tr.state().skipped_total, 3);
}

TEST(TrainConfig, ErrorsNameTheKey) {
  std::string d = test::make_temp_dir("cfg");
  auto write = [&](const std::string& text) {
    std::ofstream(d + "/c.cfg") << text;
    return d + "/c.cfg";
  };
  std::string e = error_of([&] { train::parse_train_config(write("[train]\nbogus = 1\n"), {}); });
  EXPECT_NE(e.find("train.bogus"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(write("[train]\nsteps = abc\n"), {}); });
  EXPECT_NE(e.find("train.steps"), std::string::npos) << e;
  e = error_of(
      [&] { train::parse_train_config(write("[optim]\nlr = 1e-3\n"), {"--optim.lr=-1"}); });
  EXPECT_NE(e.find("optim.lr"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config("", {"--model.nope=3"}); });
  EXPECT_NE(e.find("model.nope"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(write("[schedule]\ntype = step\n"), {}); });
  EXPECT_NE(e.find("schedule.type"), std::string::npos) << e;
  // Overrides win over the file; the effective config round-trips.
  auto c = train::parse_train_config(write("[optim]\nlr = 1e-3\n[train]\nsteps = 7\n"),
                                     {"--optim.lr=0.5"});
  EXPECT_EQ(c.lr, 0.5);
  EXPECT_EQ(c.steps, 7);
  auto c2 = train::parse_train_config(write(c.to_ini()), {});
  EXPECT_EQ(c2.to_ini(), c.to_ini());
}

TEST(LrSchedule, ReleaseLinearAndCosine) {
  train::TrainConfig c;
  c.schedule = "linear";
  c.lr = 2e-4;
  c.final_lr = 2e-5;
  c.warmup_epochs = 40;
  c.decay_end_epoch = 800;
  auto s = train::LrSchedule::from_config(c, 10);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 2e-4);  // constant during warmup (warmup_from_zero false)
  EXPECT_DOUBLE_EQ(s.lr_at(399), 2e-4);
  EXPECT_NEAR(s.lr_at(400 + 3800), 1.1e-4, 1e-12);  // halfway
  EXPECT_DOUBLE_EQ(s.lr_at(8000), 2e-5);
  c.schedule = "cosine";
  c.warmup_from_zero = true;
  auto k = train::LrSchedule::from_config(c, 10);
  EXPECT_DOUBLE_EQ(k.lr_at(0), 2e-4 / 400);
  EXPECT_NEAR(k.lr_at(400 + 3800), 1.1e-4, 1e-12);
}

// Every shipped job file parses, and the release recipe's values reach the config.
TEST(TrainConfig, JobFilesParse) {
  for (auto* f : {"tiny.cfg", "ditdh-s.cfg", "ditdh-xl-in256.cfg"})
    EXPECT_NO_THROW(train::parse_train_config(test::source_dir() + "/jobs/" + f, {})) << f;
  auto xl = train::parse_train_config(test::source_dir() + "/jobs/ditdh-xl-in256.cfg", {});
  EXPECT_EQ(xl.preset, "DiTDH-XL");
  EXPECT_EQ(xl.steps, 1751400);
  EXPECT_EQ(xl.global_batch_size, 1024);
  EXPECT_EQ(xl.lr, 2e-4);
  EXPECT_EQ(xl.beta2, 0.95);
  EXPECT_EQ(xl.ema_decay, 0.9995);
  EXPECT_EQ(xl.schedule, "linear");
  EXPECT_EQ(xl.final_lr, 2e-5);
  EXPECT_EQ(xl.warmup_epochs, 40);
  EXPECT_EQ(xl.decay_end_epoch, 800);
  EXPECT_EQ(xl.time_dist, "logit-normal_0_1");
}

// keep_last newest checkpoints plus every multiple of keep_every.
TEST(Trainer, CheckpointRetention) {
  std::string d = test::make_temp_dir("retention");
  auto cfg = micro_config();
  cfg.steps = 7;
  cfg.ckpt_every = 1;
  cfg.keep_last = 2;
  cfg.keep_every = 3;
  auto data = micro_stream();
  train::Trainer tr(cfg, data, d);
  tr.run();
  std::vector<std::string> names;
  for (auto& p : train::list_checkpoints(d)) names.push_back(fs::path(p).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"step-0000007", "step-0000006", "step-0000003"}));
  std::ifstream m(d + "/metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(m, l);) {
    ++lines;
    for (auto* k : {"\"step\"", "\"loss\"", "\"lr\"", "\"grad_norm\"", "\"samples_per_s\"",
                    "\"data_wait_s\""})
      EXPECT_NE(l.find(k), std::string::npos) << l;
  }
  EXPECT_EQ(lines, 7);
}

// The release normalises latents with the data's statistics; with the zero-initialised output
// layer the prediction is 0, so the first loss is mean((eps - z)^2) = 1 + 1 for normalised z.
TEST(Trainer, FirstLossIsTwoForNormalisedLatents) {
  auto cfg = micro_config();
  cfg.global_batch_size = 64;
  train::SyntheticStream data(256, 4, 8, 5);
  train::Trainer tr(cfg, data, "");
  const double loss = tr.step().loss;
  EXPECT_NEAR(loss, 2.0, 0.1);  // 64 x 128 draws: the standard error is about 0.03
  auto raw_cfg = cfg;
  raw_cfg.normalize = false;  // raw synthetic latents have E[z^2] = 1 + 0.25
  train::SyntheticStream raw(256, 4, 8, 5);
  train::Trainer tr_raw(raw_cfg, raw, "");
  EXPECT_NEAR(tr_raw.step().loss, 2.25, 0.12);
}

// Resuming with another data order (here another seed) is an error naming both signatures;
// train.allow_data_change resumes anyway.
TEST(Trainer, DataOrderSignatureIsCheckedOnResume) {
  std::string d = test::make_temp_dir("signature");
  auto cfg = micro_config();
  cfg.steps = 2;
  {
    auto data = micro_stream();
    train::Trainer tr(cfg, data, d);
    tr.run();
  }
  cfg.seed = 43;
  cfg.steps = 4;
  {
    auto data = micro_stream();
    train::Trainer tr(cfg, data, d);
    std::string e = error_of([&] { tr.resume(); });
    EXPECT_NE(e.find("seed=42"), std::string::npos) << e;
    EXPECT_NE(e.find("seed=43"), std::string::npos) << e;
    EXPECT_NE(e.find("train.allow_data_change"), std::string::npos) << e;
  }
  cfg.allow_data_change = true;
  auto data = micro_stream();
  train::Trainer tr(cfg, data, d);
  EXPECT_EQ(tr.resume(), 2);
  EXPECT_NE(tr.state().data_signature.find("seed=43"), std::string::npos);
}

// Buffers (position table, Fourier W) come from the checkpoint, not from init().
TEST(Trainer, BuffersAreSavedAndLoaded) {
  std::string d = test::make_temp_dir("buffers");
  auto cfg = micro_config();
  cfg.steps = 1;
  Tensor saved;
  {
    auto data = micro_stream();
    train::Trainer tr(cfg, data, d);
    nn::ParamStore& ps = tr.model().module->params();
    Tensor(ps.buffer(0)).fill_(0.25);  // a value init() never produces
    saved = ps.buffer(0).clone();
    tr.run();
  }
  auto data = micro_stream();
  train::Trainer tr(cfg, data, d);
  const Tensor& b = tr.model().module->params().buffer(0);
  EXPECT_GT(test::max_abs_diff(b, saved), 0.0);  // init() made something else
  ASSERT_EQ(tr.resume(), 1);
  EXPECT_EQ(test::max_abs_diff(b, saved), 0.0);
}

namespace {
// Two models with their own optimizers (as stage 1's generator and discriminator): each gets a
// flow-matching loss on the same batch; "b" learns ten times slower.
class TwoModels : public train::Objective {
 public:
  std::string name() const override { return "two_models"; }
  std::vector<train::ModelRole> roles(const train::TrainConfig& cfg,
                                      const train::BatchStream& data) override {
    auto r = a_.roles(cfg, data);
    auto rb = b_.roles(cfg, data);
    r[0].name = "a";
    rb[0].name = "b";
    rb[0].optim.schedule.base_lr /= 10;
    r.push_back(rb[0]);
    return r;
  }
  void attach(const std::vector<train::TrainedModel*>& m, const train::StepEnv& env) override {
    a_.attach({m[0]}, env);
    b_.attach({m[1]}, env);
  }
  train::Metrics micro_step(const train::MicroBatch& mb) override {
    const double la = a_.micro_step(mb).at("loss"), lb = b_.micro_step(mb).at("loss");
    return {{"loss", la + lb}, {"loss_b", lb}};
  }

 private:
  train::FlowMatching a_, b_;
};
}  // namespace

TEST(Trainer, SeveralModelsWithTheirOwnOptimizers) {
  std::string d = test::make_temp_dir("two_models");
  auto cfg = micro_config();
  cfg.steps = 3;
  auto data = micro_stream();
  train::Trainer tr(cfg, data, d, nullptr, std::make_unique<TwoModels>());
  auto s = tr.step();
  EXPECT_TRUE(s.metrics.count("grad_norm.a") && s.metrics.count("grad_norm.b"));
  EXPECT_DOUBLE_EQ(s.metrics.at("lr.b"), s.metrics.at("lr.a") / 10);
  EXPECT_EQ(tr.state().adam_steps.at("a"), 1);
  EXPECT_EQ(tr.state().adam_steps.at("b"), 1);
  tr.run();
  // Both models are in the checkpoint; each exports on its own.
  const std::string ckpt = d + "/checkpoints/step-0000003";
  EXPECT_EQ(train::verify_checkpoint(ckpt), "");
  train::export_checkpoint(ckpt, "b", true, d + "/b.safetensors");
  std::string e =
      error_of([&] { train::export_checkpoint(ckpt, "c", false, d + "/c.safetensors"); });
  EXPECT_NE(e.find("'c'"), std::string::npos) << e;
  auto data2 = micro_stream();
  train::Trainer again(cfg, data2, d, nullptr, std::make_unique<TwoModels>());
  EXPECT_EQ(again.resume(), 3);
  EXPECT_EQ(again.state().adam_steps.at("b"), 3);
}

namespace {
// Flow matching whose model is frozen (set_trainable(false)) during its backward, as a
// discriminator inside a generator's loss; `twice` runs two trainable backward passes instead.
class Frozen : public train::FlowMatching {
 public:
  explicit Frozen(bool twice) : twice_(twice) {}
  void attach(const std::vector<train::TrainedModel*>& m, const train::StepEnv& env) override {
    FlowMatching::attach(m, env);
    model_ = m[0];
  }
  train::Metrics micro_step(const train::MicroBatch& mb) override {
    if (twice_) {
      FlowMatching::micro_step(mb);
      return FlowMatching::micro_step(mb);
    }
    model_->params->set_trainable(false);
    auto r = FlowMatching::micro_step(mb);
    model_->params->set_trainable(true);
    return r;
  }

 private:
  bool twice_;
  train::TrainedModel* model_ = nullptr;
};
}  // namespace

// A frozen model's backward runs (input gradients only) and leaves its parameters untouched.
TEST(Trainer, FrozenModelGetsNoParameterGradients) {
  auto cfg = micro_config();
  cfg.shard = "full_shard";  // hooks gather and (would) reduce per block even in one process
  auto data = micro_stream();
  train::Trainer tr(cfg, data, "", nullptr, std::make_unique<Frozen>(false));
  const float* p = tr.model().params->masters()[0].data<float>();
  const std::vector<float> before(p, p + tr.model().params->masters()[0].numel());
  auto s = tr.step();
  EXPECT_GT(s.loss, 0);
  EXPECT_EQ(s.grad_norm, 0.0);
  EXPECT_EQ(before, std::vector<float>(p, p + before.size()));
  auto data2 = micro_stream();
  train::Trainer twice(cfg, data2, "", nullptr, std::make_unique<Frozen>(true));
  std::string e = error_of([&] { twice.step(); });
  EXPECT_NE(e.find("second backward"), std::string::npos) << e;
}
