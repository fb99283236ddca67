// Every op case of the harness table on every backend present, against the CPU F64 result on
// the same inputs: the CPU backend (and its run-to-run determinism) always, the CUDA backend in
// F32 and BF16 when a GPU answers (skipped otherwise).
#include <gtest/gtest.h>

#include <cstring>

#include "core/device.h"
#include "ops/op_harness.h"

namespace rae::test::ops {
namespace {

std::string param_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// Runs case `name` on (device, dtype) and compares outputs, saved statistics and gradients to
// the CPU F64 run on the same (rounded) inputs.
// `mode` Overwrite: the run under test writes NaN-poisoned gradient buffers (ops/grad_mode.h);
// the reference accumulates into zeros.
void compare_to_cpu(const std::string& name, Device device, DType dtype, double tol,
                    rae::ops::GradMode mode = rae::ops::GradMode::Accumulate) {
  const OpCase& c = find_case(name);
  std::vector<Tensor> x = rounded(c, make_inputs(c), dtype);
  std::vector<Tensor> w = loss_weights(run_case(c, x, Device::cpu(), DType::F64));
  for (Tensor& t : w) t = t.cast(dtype).cast(DType::F64);  // output gradients exact in dtype
  const bool bwd = c.has_grad();
  RunResult ref = run_case(c, x, Device::cpu(), DType::F64, bwd ? &w : nullptr);
  RunResult got = run_case(c, x, device, dtype, bwd ? &w : nullptr, {}, 1, mode);
  ASSERT_EQ(got.out.size(), ref.out.size());
  for (size_t k = 0; k < ref.out.size(); ++k)
    EXPECT_LT(normalized_error(got.out[k], ref.out[k]), tol) << name << " output " << k;
  for (size_t k = 0; k < ref.aux.size(); ++k)
    EXPECT_LT(normalized_error(got.aux[k], ref.aux[k]), tol) << name << " aux " << k;
  for (size_t i = 0; i < ref.grad.size(); ++i)
    if (ref.grad[i].defined()) {
      EXPECT_LT(normalized_error(got.grad[i], ref.grad[i]), tol)
          << name << " grad of " << c.inputs[i].name;
    }
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

class OpBackendCpu : public testing::TestWithParam<std::string> {};

TEST_P(OpBackendCpu, F32MatchesF64AndIsDeterministic) {
  const OpCase& c = find_case(GetParam());
  compare_to_cpu(c.name, Device::cpu(), DType::F32, c.f32_tol);
  // Two identical runs give bit-identical results (fixed reduction order, no atomics).
  std::vector<Tensor> x = make_inputs(c);
  std::vector<Tensor> w = loss_weights(run_case(c, x, Device::cpu(), DType::F32));
  const bool bwd = c.has_grad();
  RunResult a = run_case(c, x, Device::cpu(), DType::F32, bwd ? &w : nullptr);
  RunResult b = run_case(c, x, Device::cpu(), DType::F32, bwd ? &w : nullptr);
  for (size_t k = 0; k < a.out.size(); ++k) EXPECT_TRUE(bitwise_equal(a.out[k], b.out[k]));
  for (size_t i = 0; i < a.grad.size(); ++i)
    if (a.grad[i].defined()) {
      EXPECT_TRUE(bitwise_equal(a.grad[i], b.grad[i]));
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpBackendCpu, testing::ValuesIn(case_names()), param_name);

class OpBackendCuda : public testing::TestWithParam<std::string> {};

TEST_P(OpBackendCuda, F32MatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (build without CUDA or no GPU answers)";
  const OpCase& c = find_case(GetParam());
  compare_to_cpu(c.name, Device::cuda(), DType::F32, c.f32_tol);
}

TEST_P(OpBackendCuda, Bf16MatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (build without CUDA or no GPU answers)";
  const OpCase& c = find_case(GetParam());
  if (!c.bf16) GTEST_SKIP() << c.name << " runs in F32 only";
  compare_to_cpu(c.name, Device::cuda(), DType::BF16, c.bf16_tol);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpBackendCuda, testing::ValuesIn(case_names()), param_name);

// GradMode::Overwrite on the GPU (NaN-poisoned buffers) against the CPU F64 accumulate run, in
// F32 and BF16: the fast kernels' overwrite variants, and in the check's "legacy" configuration
// (RAE_CUDA_LEGACY=all RAE_ATTENTION=gemm) the zero-then-accumulate fallbacks.
class OpOverwriteCuda : public testing::TestWithParam<std::string> {};

TEST_P(OpOverwriteCuda, F32AndBf16MatchCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (build without CUDA or no GPU answers)";
  const OpCase& c = find_case(GetParam());
  compare_to_cpu(c.name, Device::cuda(), DType::F32, c.f32_tol, rae::ops::GradMode::Overwrite);
  if (c.bf16)
    compare_to_cpu(c.name, Device::cuda(), DType::BF16, c.bf16_tol, rae::ops::GradMode::Overwrite);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpOverwriteCuda, testing::ValuesIn(overwrite_case_names()),
                         param_name);

}  // namespace
}  // namespace rae::test::ops
