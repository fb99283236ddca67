// The CPU vector kernels of src/ops/cpu/vec_math.cpp: the polynomial float exp against libm,
// the lane sums and maxima against plain loops, the SiLU/SwiGLU rows against double formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/cpu/cpu_util.h"

using namespace rae::ops::cpu;

namespace {

// Distance in float ulps of y from the double reference.
double ulps(float y, double ref) {
  const float r = static_cast<float>(ref);
  const double ulp = std::nextafter(r, INFINITY) - r;
  return std::fabs(y - ref) / ulp;
}

}  // namespace

// Tolerance 2 ulp: the polynomial is Cephes-accurate (about 1 ulp; 1.002 measured), and the
// softmax/attention goldens rely on it staying within float rounding of libm.
TEST(OpsCpuVec, ExpWithinTwoUlp) {
  const int64_t n = 100003;  // not a multiple of the lane count: covers the tail loop
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = -87.0f + 175.0f * static_cast<float>(i) / n;
  const double sum = exp_shift_sum(x.data(), y.data(), n, 0.0f);
  double ref_sum = 0, worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    ref_sum += y[i];
    worst = std::max(worst, ulps(y[i], ref));
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_NEAR(sum / ref_sum, 1.0, 1e-6);  // the lane sum of the same values
}

TEST(OpsCpuVec, ExpShiftEdgesAndAliasing) {
  std::vector<float> x = {0.0f, -1.0f, -100.0f, -INFINITY, 1.0f};
  const double sum = exp_shift_sum(x.data(), x.data(), 5, 1.0f);  // in place
  EXPECT_NEAR(x[0], std::exp(-1.0), 2e-7);
  EXPECT_NEAR(x[1], std::exp(-2.0), 2e-7);
  EXPECT_EQ(x[2], 0.0f);  // below the normal range: 0
  EXPECT_EQ(x[3], 0.0f);
  EXPECT_FLOAT_EQ(x[4], 1.0f);
  EXPECT_NEAR(sum, 1.0 + std::exp(-1.0) + std::exp(-2.0), 1e-6);
  float nan_in = NAN, nan_out = 0;
  exp_shift_sum(&nan_in, &nan_out, 1, 0.0f);
  EXPECT_TRUE(std::isnan(nan_out));
}

TEST(OpsCpuVec, RowMaxSumSquaresAndScale) {
  for (int64_t n : {1, 7, 16, 33, 300}) {
    std::vector<float> x(n);
    std::vector<double> xd(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f - 0.001f * static_cast<float>(i);
      xd[i] = x[i];
    }
    x[n / 2] = 9.5f;
    xd[n / 2] = 9.5;
    float m = x[0];
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      m = std::max(m, x[i]);
      ss += static_cast<double>(x[i]) * x[i];
    }
    EXPECT_EQ(row_max(x.data(), n), m) << n;
    EXPECT_NEAR(sum_squares(x.data(), n), ss, 1e-12 * ss) << n;
    EXPECT_NEAR(sum_squares(xd.data(), n), ss, 1e-12 * ss) << n;
    std::vector<float> y = x;
    scale_inplace(y.data(), n, 0.5f);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], x[i] * 0.5f);
  }
}

// SiLU / SwiGLU rows (polynomial exp) against double formulas, over the range where sigmoid
// saturates too: within 4 float ulps of the result's magnitude scale (1e-6 relative + tiny abs).
TEST(OpsCpuVec, SiluSwigluRowsMatchDouble) {
  const int64_t n = 4099;
  std::vector<float> x(n), x2(n), dy(n), y(n), g1(n, 0.5f), g2(n, -0.25f), gs(n, 0.5f);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(-100.0 + 200.0 * i / (n - 1));
    x2[i] = static_cast<float>(std::cos(0.37 * i));
    dy[i] = static_cast<float>(std::sin(0.11 * i));
  }
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  auto near = [](double got, double want) {
    return std::fabs(got - want) <= 5e-7 * std::fabs(want) + 1e-30;
  };
  silu_row(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(near(y[i], x[i] * sig(x[i]))) << x[i];
  swiglu_row(x.data(), x2.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(near(y[i], x[i] * sig(x[i]) * x2[i])) << x[i];
  silu_backward_row(x.data(), dy.data(), gs.data(), n);
  swiglu_backward_row(x.data(), x2.data(), dy.data(), g1.data(), g2.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double s = sig(x[i]), ds = s * (1.0 + x[i] * (1.0 - s));
    EXPECT_NEAR(gs[i], 0.5 + dy[i] * ds, 2e-6 * (0.5 + std::fabs(dy[i] * ds))) << x[i];
    EXPECT_NEAR(g1[i], 0.5 + dy[i] * x2[i] * ds, 2e-6 * (0.5 + std::fabs(dy[i] * x2[i] * ds)))
        << x[i];
    EXPECT_NEAR(g2[i], -0.25 + dy[i] * x[i] * s, 2e-6 * (0.25 + std::fabs(dy[i] * x[i] * s)))
        << x[i];
  }
}
