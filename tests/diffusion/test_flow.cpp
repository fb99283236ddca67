// Flow matching: time distribution and shift, per-sample determinism and the interpolation
// (the samplers: tests/sample/test_samplers.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "core/device.h"
#include "core/rng.h"
#include "diffusion/flow.h"
#include "ops/elementwise.h"
#include "support/util.h"

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

// draw_flow_batch: per-sample keyed draws (a sample's noise, time and label do not depend on
// its position in the batch), then ops::flow_interpolate builds x_t and the target.
TEST(Flow, TrainingBatchDrawsAndInterpolates) {
  FlowConfig c;
  c.class_dropout = 0.5;
  c.num_classes = 9;
  const int64_t B = 3, T = 3, C = 4;
  Tensor x = Tensor::empty({B, T, C}), labels = Tensor::full({B}, 2, DType::I32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.1f * i;
  Tensor ids = Tensor::empty({B}, DType::I64);
  for (int64_t b = 0; b < B; ++b) ids.data<int64_t>()[b] = 10 + b;
  Tensor eps = Tensor::empty({B, T, C}), xt = Tensor::empty({B, T, C}),
         u = Tensor::empty({B, T, C});
  Tensor t = Tensor::empty({B}), y = Tensor::empty({B}, DType::I32);
  diffusion::draw_flow_batch(c, 4, ids, labels, eps, t, y);
  ops::flow_interpolate(xt, u, x, eps, t);
  // The same samples in another order and batch give the same draws.
  Tensor ids1 = Tensor::full({1}, 11, DType::I64), lab1 = Tensor::full({1}, 2, DType::I32);
  Tensor eps1 = Tensor::empty({1, T, C}), t1 = Tensor::empty({1}),
         y1 = Tensor::empty({1}, DType::I32);
  diffusion::draw_flow_batch(c, 4, ids1, lab1, eps1, t1, y1);
  EXPECT_EQ(t1.data<float>()[0], t.data<float>()[1]);
  EXPECT_EQ(y1.data<int32_t>()[0], y.data<int32_t>()[1]);
  for (int64_t i = 0; i < T * C; ++i)
    EXPECT_EQ(eps1.data<float>()[i], eps.data<float>()[T * C + i]);
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t id = 10 + b;
    float tb = t.data<float>()[b];
    EXPECT_EQ(tb, static_cast<float>(diffusion::sample_time(c, 4, id)));
    EXPECT_EQ(y.data<int32_t>()[b], diffusion::drop_label(c, 4, id, 2));
    for (int64_t i = 0; i < T * C; ++i) {
      const float e = rng::normal_at(rng::Key{c.seed, rng::Purpose::Noise, 4, id}, i);
      EXPECT_EQ(eps.data<float>()[b * T * C + i], e);
      float xv = x.data<float>()[b * T * C + i];
      EXPECT_FLOAT_EQ(xt.data<float>()[b * T * C + i], (1 - tb) * xv + tb * e);
      EXPECT_FLOAT_EQ(u.data<float>()[b * T * C + i], e - xv);
    }
  }
}

// The draws on the GPU are the CPU's (the same host/device functions); float noise agrees to
// the last bit up to the device's libm (a few ulp at most), times and labels exactly.
TEST(Flow, CudaDrawsEqualHostDraws) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  FlowConfig c;
  c.seed = 5, c.class_dropout = 0.3, c.num_classes = 7, c.shift = 2.0;
  const int64_t B = 33, D = 515;
  Tensor ids = Tensor::empty({B}, DType::I64), labels = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b)
    ids.data<int64_t>()[b] = 1000 + 7 * b, labels.data<int32_t>()[b] = b % 7;
  Tensor eps = Tensor::empty({B, D}), t = Tensor::empty({B}), y = Tensor::empty({B}, DType::I32);
  diffusion::draw_flow_batch(c, 9, ids, labels, eps, t, y);
  const Device g = Device::cuda();
  Tensor eps_d = Tensor::empty({B, D}, DType::F32, g), t_d = Tensor::empty({B}, DType::F32, g);
  Tensor y_d = Tensor::empty({B}, DType::I32, g);
  diffusion::draw_flow_batch(c, 9, ids.to(g), labels.to(g), eps_d, t_d, y_d);
  EXPECT_LE(rae::test::tolerance_ratio(eps_d.to(Device::cpu()), eps, 1e-6, 1e-6), 1.0);
  EXPECT_LE(rae::test::tolerance_ratio(t_d.to(Device::cpu()), t, 1e-7, 1e-7), 1.0);
  Tensor yh = y_d.to(Device::cpu());
  for (int64_t b = 0; b < B; ++b) EXPECT_EQ(yh.data<int32_t>()[b], y.data<int32_t>()[b]);
}
