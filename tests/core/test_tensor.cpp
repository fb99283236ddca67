#include <gtest/gtest.h>

#include "core/rng.h"
#include "support/util.h"
#include "tensor/tensor.h"

using namespace rae;

TEST(Tensor, ViewNarrowSelectShareStorage) {
  Tensor t = Tensor::zeros({2, 3, 4});
  Tensor v = t.view({6, 4});
  v.data<float>()[5] = 7.f;
  EXPECT_EQ(t.item(5), 7.0);
  Tensor n = t.narrow(1, 1, 2);  // (2, 2, 4), not contiguous
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_THROW(n.view({16}), Error);  // no hidden copy
  Tensor c = n.clone();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.item(1), 7.0);  // element (0,1,1) of t = flat 5
  EXPECT_EQ(t.select(0, 1).shape(), Shape({3, 4}));
}

TEST(Tensor, CastRoundTripsBf16AndF16) {
  Tensor x = test::randn({257}, 3);
  Tensor b = x.cast(DType::BF16).cast(DType::F32);
  Tensor h = x.cast(DType::F16).cast(DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_NEAR(b.item(i), x.item(i), std::fabs(x.item(i)) * (1.0 / 128) + 1e-30);
    EXPECT_NEAR(h.item(i), x.item(i), std::fabs(x.item(i)) * (1.0 / 1024) + 1e-7);
  }
  EXPECT_EQ(bf16_bits_to_f32(f32_to_bf16_bits(1.0f)), 1.0f);
  EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(65504.f)), 65504.f);
}

TEST(Tensor, ViewInfersMinusOneAndRejectsBadShape) {
  Tensor t = Tensor::empty({4, 6});
  EXPECT_EQ(t.view({-1, 3}).shape(), Shape({8, 3}));
  EXPECT_THROW(t.view({5, -1}), Error);
  EXPECT_THROW(t.view({7, 3}), Error);
}

TEST(Rng, PhiloxIsCounterBasedAndWellDistributed) {
  rng::Key a{42, rng::Purpose::Noise, 3, 17};
  // Same key and counter, same number, in any order.
  float x = rng::normal_at(a, 1001);
  for (int i = 0; i < 1000; ++i) (void)rng::normal_at(a, i);
  EXPECT_EQ(x, rng::normal_at(a, 1001));
  rng::Key b = a;
  b.index = 18;
  EXPECT_NE(rng::normal_at(a, 0), rng::normal_at(b, 0));
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double v = rng::normal_at(a, i);
    s += v;
    s2 += v * v;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
}
