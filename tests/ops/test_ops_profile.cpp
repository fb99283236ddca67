// The op layer's per-op timing hook (ops/profile.h): ops called through their dispatch point are
// counted while profiling is on (and only then), nested calls count once (in the outer scope),
// declared FLOPs add up, and the table has the ops and the outside-ops row.
#include <gtest/gtest.h>

#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/profile.h"
#include "support/util.h"

namespace rae {
namespace {
using test::randn;

const ops::profile::OpTime* find(const std::vector<ops::profile::OpTime>& v,
                                 const std::string& op) {
  for (const auto& t : v)
    if (t.op == op) return &t;
  return nullptr;
}

TEST(OpsProfile, CountsCallsOnlyWhileOn) {
  if (!ops::profile::compiled_in()) GTEST_SKIP() << "built with RAE_OP_PROFILE=OFF";
  Tensor x = randn({4, 8}, 1), w = randn({6, 8}, 2), y = Tensor::empty({4, 6});
  ops::linear_forward(y, x, w, Tensor());  // not profiled
  ops::profile::start();
  for (int i = 0; i < 3; ++i) ops::linear_forward(y, x, w, Tensor());
  ops::add_(y, y, 0.5);
  std::vector<ops::profile::OpTime> t = ops::profile::stop();
  ops::add_(y, y, 0.5);  // not profiled
  const ops::profile::OpTime* lf = find(t, "linear_forward");
  ASSERT_NE(lf, nullptr);
  EXPECT_EQ(lf->calls, 3);
  EXPECT_DOUBLE_EQ(lf->flops, 3 * 2.0 * 4 * 6 * 8);  // 2 * rows * out * in per call
  EXPECT_FALSE(lf->cuda);
  ASSERT_NE(find(t, "add_"), nullptr);
  EXPECT_EQ(find(t, "add_")->calls, 1);
  EXPECT_EQ(t.size(), 2u);
}

TEST(OpsProfile, NestedCallsCountInTheOuterScope) {
  if (!ops::profile::compiled_in()) GTEST_SKIP() << "built with RAE_OP_PROFILE=OFF";
  Tensor a = randn({16}, 3), b = randn({16}, 4);
  ops::profile::start();
  {
    ops::profile::Scope outer("outer_region", a, 10.0);
    ops::add_(a, b, 1.0);
    ops::add_(a, b, 1.0);
    ops::profile::add_flops(5.0);
  }
  ops::add_(a, b, 1.0);
  std::vector<ops::profile::OpTime> t = ops::profile::stop();
  const ops::profile::OpTime* o = find(t, "outer_region");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->calls, 1);
  EXPECT_DOUBLE_EQ(o->flops, 15.0);
  ASSERT_NE(find(t, "add_"), nullptr);
  EXPECT_EQ(find(t, "add_")->calls, 1);  // the two nested calls are inside outer_region
  const std::string table = ops::profile::format_table(t, 100.0);
  EXPECT_NE(table.find("outer_region (cpu)"), std::string::npos) << table;
  EXPECT_NE(table.find("(outside ops)"), std::string::npos) << table;
}

TEST(OpsProfile, OffWhenNotStarted) {
  EXPECT_FALSE(ops::profile::on());
  EXPECT_TRUE(ops::profile::stop().empty());
}

}  // namespace
}  // namespace rae
