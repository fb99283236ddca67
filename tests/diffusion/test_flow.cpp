// Flow matching: time distribution and shift, per-sample determinism and the interpolation
// (the samplers: tests/sample/test_samplers.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "diffusion/flow.h"

using namespace rae;
using diffusion::FlowConfig;

TEST(Flow, ShiftOfTheRelease) {
  EXPECT_NEAR(diffusion::time_shift(16 * 16 * 768), std::sqrt(48.0), 1e-12);
  const double a = 3.0;
  EXPECT_DOUBLE_EQ(diffusion::apply_shift(0.0, a), 0.0);
  EXPECT_DOUBLE_EQ(diffusion::apply_shift(1.0, a), 1.0);
  EXPECT_NEAR(diffusion::apply_shift(0.5, a), 0.75, 1e-12);
}

TEST(Flow, TimeDistributions) {
  FlowConfig c;
  diffusion::parse_time_dist("logit-normal_0_1", c);
  EXPECT_EQ(c.time_dist, FlowConfig::TimeDist::LogitNormal);
  c.shift = 1.0;
  double mean = 0, lo = 1, hi = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    double t = diffusion::sample_time(c, 3, i);
    mean += t / n, lo = std::min(lo, t), hi = std::max(hi, t);
  }
  EXPECT_NEAR(mean, 0.5, 0.01);  // logit-normal(0, 1) is symmetric about 1/2
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 0.999);
  diffusion::parse_time_dist("uniform", c);
  c.shift = 2.0;
  mean = 0;
  for (int i = 0; i < n; ++i) mean += diffusion::sample_time(c, 3, i) / n;
  // E[2u / (1 + u)] for u ~ U(0, 0.999) ~= 2 - 2 ln 2 = 0.6137
  EXPECT_NEAR(mean, 2 - 2 * std::log(2.0), 0.01);
  EXPECT_THROW(diffusion::parse_time_dist("logit-normal_0", c), std::exception);
  EXPECT_THROW(diffusion::parse_time_dist("beta", c), std::exception);
}

TEST(Flow, DrawsDependOnlyOnStepAndSample) {
  FlowConfig c;
  c.seed = 9;
  EXPECT_EQ(diffusion::sample_time(c, 5, 77), diffusion::sample_time(c, 5, 77));
  EXPECT_NE(diffusion::sample_time(c, 5, 77), diffusion::sample_time(c, 5, 78));
  EXPECT_NE(diffusion::sample_time(c, 5, 77), diffusion::sample_time(c, 6, 77));
  int dropped = 0;
  for (int i = 0; i < 10000; ++i) dropped += diffusion::drop_label(c, 1, i, 3) == 1000;
  EXPECT_NEAR(dropped / 10000.0, 0.1, 0.01);
}

TEST(Flow, TrainingBatchInterpolates) {
  FlowConfig c;
  c.class_dropout = 0;
  const int64_t B = 2, T = 3, C = 4;
  Tensor x = Tensor::empty({B, T, C}), labels = Tensor::full({B}, 2, DType::I32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.1f * i;
  Tensor xt = Tensor::empty({B, T, C}), u = Tensor::empty({B, T, C});
  Tensor t = Tensor::empty({B}), y = Tensor::empty({B}, DType::I32);
  diffusion::make_training_batch(c, 4, x, labels, {10, 11}, xt, u, t, y);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<float> eps(T * C);
    diffusion::fill_noise(eps.data(), T * C, c.seed, 4, 10 + b);
    float tb = t.data<float>()[b];
    EXPECT_EQ(y.data<int32_t>()[b], 2);
    for (int64_t i = 0; i < T * C; ++i) {
      float xv = x.data<float>()[b * T * C + i];
      EXPECT_FLOAT_EQ(xt.data<float>()[b * T * C + i], (1 - tb) * xv + tb * eps[i]);
      EXPECT_FLOAT_EQ(u.data<float>()[b * T * C + i], eps[i] - xv);
    }
  }
}
