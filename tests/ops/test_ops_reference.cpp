// The F64 CPU forward of every op case against its naive reference (op_references.cpp).
#include <gtest/gtest.h>

#include "ops/op_harness.h"

namespace rae::test::ops {
namespace {

std::string param_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

class OpReference : public testing::TestWithParam<std::string> {};

TEST_P(OpReference, ForwardMatchesNaiveF64) {
  const OpCase& c = find_case(GetParam());
  ASSERT_TRUE(c.reference) << c.name << " has no reference in op_references.cpp";
  std::vector<Tensor> x = make_inputs(c);
  RunResult got = run_case(c, x, Device::cpu(), DType::F64);
  std::vector<Tensor> want = c.reference(x);
  ASSERT_EQ(got.out.size(), want.size());
  // Both sides compute in double; only summation order differs.
  for (size_t k = 0; k < want.size(); ++k)
    EXPECT_LT(normalized_error(got.out[k], want[k]), 1e-12) << c.name << " output " << k;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpReference, testing::ValuesIn(case_names()), param_name);

}  // namespace
}  // namespace rae::test::ops
