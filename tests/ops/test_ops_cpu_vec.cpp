// The CPU vector kernels of src/ops/cpu/vec_math.cpp: the polynomial float exp against libm,
// the lane sums and maxima against plain loops.
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
