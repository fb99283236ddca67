// train.cuda_graph (train/graph_step.h): the step split for a CUDA graph (eager prepare; the
// device part with the loss, gradient norm, clip, skip, AdamW and EMA on step scalars) gives the
// eager trainer's values. On the CPU, where the device part simply runs: bit-identical losses,
// gradient norms, parameters, moments and EMA over several steps, with clipping active. On a
// GPU (skipped without one): the captured and replayed graph against the eager CUDA step, fp32
// (same kernels: identical up to the reductions' order, which is fixed) and bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/device.h"
#include "ops/step_scalars.h"
#include "support/util.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace rae;

namespace {

struct TrainRun {
  std::vector<double> loss, norm;
  std::vector<Tensor> state;  // masters, m, v, EMA (host copies)
  int64_t replays = 0, adam_steps = 0;
};

TrainRun train_run(bool graph, const std::string& device, const std::string& precision, int steps) {
  train::TrainConfig c;
  c.preset = "DiTDH-micro";
  c.global_batch_size = 4;
  c.lr = 1e-3;
  c.clip_grad = 0.05;  // small: clipping is active
  c.steps = steps;
  c.progress = false;
  c.device = device;
  c.precision = precision;
  c.cuda_graph = graph;
  c.validate();
  train::SyntheticStream data(16, 4, 8, 5);
  train::Trainer tr(c, data, "");
  TrainRun r;
  for (int i = 0; i < steps; ++i) {
    train::StepStats s = tr.step();
    r.loss.push_back(s.loss);
    r.norm.push_back(s.grad_norm);
  }
  train::TrainedModel& m = tr.model();
  for (const auto* v :
       {&m.params->masters(), &m.optimizer->m(), &m.optimizer->v(), &m.optimizer->ema()})
    for (const Tensor& t : *v) r.state.push_back(t.to(Device::cpu()));
  r.adam_steps = m.optimizer->step_count();
  if (tr.graph_step()) r.replays = tr.graph_step()->replays();
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]) / std::fabs(b[i]));
  return d;
}

}  // namespace

TEST(GraphStep, CpuSplitStepIsBitIdenticalToEager) {
  TrainRun eager = train_run(false, "cpu", "fp32", 4), split = train_run(true, "cpu", "fp32", 4);
  EXPECT_EQ(split.loss, eager.loss);
  EXPECT_EQ(split.norm, eager.norm);
  EXPECT_GT(eager.norm.back(), 0.05);  // the clip was active
  EXPECT_EQ(split.adam_steps, eager.adam_steps);
  ASSERT_EQ(split.state.size(), eager.state.size());
  for (size_t i = 0; i < eager.state.size(); ++i)
    EXPECT_TRUE(same_bits(split.state[i], eager.state[i])) << i;
}

TEST(GraphStep, StepScalarsSkipNonFinite) {
  // The skip flag stops AdamW and EMA, as the eager trainer skips a non-finite step.
  Tensor s = Tensor::zeros({ops::kStepScalarCount}, DType::F64);
  ops::AdamWParams p;
  p.lr = 0.1;
  ops::fill_adamw_scalars(s.data<double>(), p);
  s.data<double>()[ops::kLoss] = NAN;
  ops::step_control(s, 1.0);
  EXPECT_EQ(s.data<double>()[ops::kSkip], 1.0);
  Tensor w = Tensor::full({8}, 1.0), g = Tensor::full({8}, 1.0), m = Tensor::zeros({8}),
         v = Tensor::zeros({8}), ema = Tensor::full({8}, 2.0);
  ops::adamw_step_scalars(w, g, m, v, p, s);
  ops::ema_update_scalars(ema, w, 0.5, s);
  EXPECT_EQ(w.data<float>()[0], 1.0f);
  EXPECT_EQ(ema.data<float>()[0], 2.0f);
  s.data<double>()[ops::kLoss] = 1.0;
  s.data<double>()[ops::kGradSumSq] = 4.0;  // norm 2, clip at 1
  ops::step_control(s, 1.0);
  EXPECT_EQ(s.data<double>()[ops::kSkip], 0.0);
  EXPECT_DOUBLE_EQ(s.data<double>()[ops::kClipCoef], ops::clip_coefficient(2.0, 1.0));
}

TEST(GraphStep, RefusesSeveralMicroBatches) {
  std::string e = test::error_of([] {
    train::parse_train_config("", {"--train.cuda_graph=true", "--train.grad_accum_steps=2",
                                   "--train.global_batch_size=8"});
  });
  EXPECT_NE(e.find("train.cuda_graph"), std::string::npos) << e;
}

TEST(GraphStep, CudaGraphReplaysMatchEager) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  TrainRun eager = train_run(false, "cuda", "fp32", 5), graph = train_run(true, "cuda", "fp32", 5);
  EXPECT_EQ(graph.replays, 4);  // step 1 eager, step 2 captured and launched, then replays
  EXPECT_LT(max_rel(graph.loss, eager.loss), 1e-6);
  EXPECT_LT(max_rel(graph.norm, eager.norm), 1e-5);
  EXPECT_EQ(graph.adam_steps, eager.adam_steps);
  TrainRun eager16 = train_run(false, "cuda", "bf16", 5),
           graph16 = train_run(true, "cuda", "bf16", 5);
  EXPECT_EQ(graph16.replays, 4);
  EXPECT_LT(max_rel(graph16.loss, eager16.loss), 1e-2);
}
