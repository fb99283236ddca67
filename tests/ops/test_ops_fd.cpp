// Every op case of the harness table: the analytic backward against central finite differences
// in F64, F32 against F64, backward accumulation, and skipping of undefined gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "ops/op_harness.h"

namespace rae::test::ops {
namespace {

std::string param_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// Central differences with h = 1e-6 in F64: truncation error ~h^2 and rounding ~1e-16 |L| / h
// ~1e-9 here, so 1e-6 relative to the gradient's scale separates a correct backward from a
// wrong one by orders of magnitude.
constexpr double kH = 1e-6;
constexpr double kFdTol = 1e-6;
constexpr int kMaxProbes = 64;  // elements probed per input

class OpGrad : public testing::TestWithParam<std::string> {};

TEST_P(OpGrad, FiniteDifferencesF64) {
  const OpCase& c = find_case(GetParam());
  std::vector<Tensor> x = make_inputs(c);
  RunResult fwd = run_case(c, x, Device::cpu(), DType::F64);
  std::vector<Tensor> w = loss_weights(fwd);
  RunResult an = run_case(c, x, Device::cpu(), DType::F64, &w);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].grad) continue;
    const Tensor& g = an.grad[i];
    ASSERT_TRUE(g.defined()) << c.inputs[i].name;
    double scale = 0;
    for (int64_t k = 0; k < g.numel(); ++k) scale = std::max(scale, std::fabs(g.data<double>()[k]));
    const int64_t n = x[i].numel();
    std::vector<int64_t> probes;
    if (n <= kMaxProbes) {
      for (int64_t k = 0; k < n; ++k) probes.push_back(k);
    } else {
      rng::Key key{99, rng::Purpose::Test, 5, i};
      for (int k = 0; k < kMaxProbes; ++k)
        probes.push_back(
            std::min<int64_t>(n - 1, static_cast<int64_t>(rng::uniform_at(key, k) * n)));
    }
    for (int64_t k : probes) {
      std::vector<Tensor> xp = x, xm = x;
      xp[i] = x[i].clone();
      xm[i] = x[i].clone();
      xp[i].data<double>()[k] += kH;
      xm[i].data<double>()[k] -= kH;
      double fd = (loss(run_case(c, xp, Device::cpu(), DType::F64), w) -
                   loss(run_case(c, xm, Device::cpu(), DType::F64), w)) /
                  (2 * kH);
      double a = g.data<double>()[k];
      EXPECT_NEAR(a, fd, kFdTol * (std::fabs(fd) + scale) + 1e-12)
          << c.name << ": d loss / d " << c.inputs[i].name << "[" << k << "]";
    }
  }
}

TEST_P(OpGrad, BackwardAccumulates) {
  // Backward ops add into gradients: running the backward twice gives twice the gradient.
  const OpCase& c = find_case(GetParam());
  std::vector<Tensor> x = make_inputs(c);
  std::vector<Tensor> w = loss_weights(run_case(c, x, Device::cpu(), DType::F64));
  RunResult once = run_case(c, x, Device::cpu(), DType::F64, &w);
  RunResult twice = run_case(c, x, Device::cpu(), DType::F64, &w, {}, 2);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].grad) continue;
    Tensor doubled = once.grad[i].clone();
    for (int64_t k = 0; k < doubled.numel(); ++k) doubled.data<double>()[k] *= 2;
    EXPECT_LT(normalized_error(twice.grad[i], doubled), 1e-12) << c.inputs[i].name;
  }
}

TEST_P(OpGrad, UndefinedGradientsAreSkipped) {
  // Asking for one gradient at a time gives the same values as asking for all of them.
  const OpCase& c = find_case(GetParam());
  std::vector<Tensor> x = make_inputs(c);
  std::vector<Tensor> w = loss_weights(run_case(c, x, Device::cpu(), DType::F64));
  RunResult all = run_case(c, x, Device::cpu(), DType::F64, &w);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].grad) continue;
    std::vector<bool> mask(c.inputs.size(), false);
    mask[i] = true;
    RunResult one = run_case(c, x, Device::cpu(), DType::F64, &w, mask);
    for (size_t j = 0; j < c.inputs.size(); ++j)
      if (j != i) {
        EXPECT_FALSE(one.grad[j].defined());
      }
    EXPECT_LT(normalized_error(one.grad[i], all.grad[i]), 1e-12) << c.inputs[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGrad, testing::ValuesIn(case_names(true)), param_name);

class OpOverwrite : public testing::TestWithParam<std::string> {};

TEST_P(OpOverwrite, WritesFreshBuffersAsAccumulateWritesZeroedOnes) {
  // GradMode::Overwrite (ops/grad_mode.h): with the overwritten gradients starting as NaN, every
  // gradient equals the Accumulate run's on zero-filled buffers, in F64 and F32, bit for bit
  // (x + 0 == x), and the accumulating gradients of the case are unaffected. Each buffer is
  // also asked for alone (the others undefined), as the DiT block's frozen passes do.
  const OpCase& c = find_case(GetParam());
  for (DType dt : {DType::F64, DType::F32}) {
    std::vector<Tensor> x = rounded(c, make_inputs(c), dt);
    std::vector<Tensor> w = loss_weights(run_case(c, x, Device::cpu(), dt));
    RunResult acc = run_case(c, x, Device::cpu(), dt, &w);
    RunResult ow = run_case(c, x, Device::cpu(), dt, &w, {}, 1, rae::ops::GradMode::Overwrite);
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      if (!c.inputs[i].grad) continue;
      ASSERT_EQ(normalized_error(ow.grad[i], acc.grad[i]), 0.0)
          << c.inputs[i].name << " in " << dtype_name(dt);
      std::vector<bool> mask(c.inputs.size(), false);
      mask[i] = true;
      RunResult one = run_case(c, x, Device::cpu(), dt, &w, mask, 1, rae::ops::GradMode::Overwrite);
      EXPECT_EQ(normalized_error(one.grad[i], acc.grad[i]), 0.0)
          << c.inputs[i].name << " alone, in " << dtype_name(dt);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpOverwrite, testing::ValuesIn(overwrite_case_names()), param_name);

class OpPrecision : public testing::TestWithParam<std::string> {};

TEST_P(OpPrecision, F32MatchesF64) {
  // The F32 kernels against the F64 ones on the same (F32-representable) inputs. Tolerance
  // 1e-4 of each tensor's scale: a few hundred float roundings at most in these shapes.
  const OpCase& c = find_case(GetParam());
  std::vector<Tensor> x = rounded(c, make_inputs(c), DType::F32);
  RunResult ref_fwd = run_case(c, x, Device::cpu(), DType::F64);
  std::vector<Tensor> w = loss_weights(ref_fwd);
  const bool bwd = c.has_grad();
  RunResult ref = run_case(c, x, Device::cpu(), DType::F64, bwd ? &w : nullptr);
  RunResult got = run_case(c, x, Device::cpu(), DType::F32, bwd ? &w : nullptr);
  for (size_t k = 0; k < ref.out.size(); ++k)
    EXPECT_LT(normalized_error(got.out[k], ref.out[k]), c.f32_tol) << "output " << k;
  for (size_t k = 0; k < ref.aux.size(); ++k)
    EXPECT_LT(normalized_error(got.aux[k], ref.aux[k]), c.f32_tol) << "aux " << k;
  for (size_t i = 0; i < ref.grad.size(); ++i)
    if (ref.grad[i].defined()) {
      EXPECT_LT(normalized_error(got.grad[i], ref.grad[i]), c.f32_tol)
          << "grad of " << c.inputs[i].name;
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpPrecision, testing::ValuesIn(case_names()), param_name);

}  // namespace
}  // namespace rae::test::ops
