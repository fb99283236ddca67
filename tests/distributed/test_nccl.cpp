// NCCL backend on GPUs (one rank per GPU). Skipped without a CUDA build or without a GPU; on a
// one-GPU machine it runs as one rank (NCCL refuses two ranks on one GPU).
#include <gtest/gtest.h>

#include "core/device.h"
#include "distributed/nccl_communicator.h"
#include "mpi_env.h"
#include "support/util.h"
#include "toy_module.h"

namespace rae {
namespace {

using distributed::ReduceOp;
using test::world;

std::unique_ptr<distributed::Communicator> make_nccl_or_skip() {
  if (!distributed::nccl_compiled() || cuda_device_count() == 0) return nullptr;
  if (world().size() > cuda_device_count()) return nullptr;
  return distributed::make_nccl_communicator(world());
}

#define NCCL_OR_SKIP(var)         \
  auto var = make_nccl_or_skip(); \
  if (!var) GTEST_SKIP() << "needs a CUDA build and one GPU per rank";

double value(int r, int64_t i) {
  return static_cast<double>((r + 1) * ((i % 7) + 1));
}
Tensor rank_tensor(int r, int64_t n, DType dt, Device d) {
  Tensor t = Tensor::empty({n}, DType::F64);
  for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = value(r, i);
  return t.cast(dt).to(d);
}
double sum_value(int size, int64_t i) {
  double s = 0;
  for (int r = 0; r < size; ++r) s += value(r, i);
  return s;
}

TEST(Nccl, FactoryThrowsWithoutCuda) {
  if (distributed::nccl_compiled()) GTEST_SKIP() << "CUDA build";
  EXPECT_THROW(distributed::make_nccl_communicator(world()), Error);
}

TEST(Nccl, CollectivesMatchExactSums) {
  NCCL_OR_SKIP(c);
  EXPECT_STREQ(c->backend(), "nccl");
  EXPECT_EQ(c->size(), world().size());
  const Device d = c->device();
  for (DType dt : {DType::F32, DType::BF16}) {
    const int64_t n = 4099;
    Tensor t = rank_tensor(c->rank(), n, dt, d);
    c->all_reduce_async(t, ReduceOp::Sum).synchronize();
    Tensor host = t.to(Device::cpu());
    for (int64_t i = 0; i < n; i += 13) ASSERT_EQ(host.item(i), sum_value(c->size(), i));

    Tensor in = rank_tensor(c->rank(), n * c->size(), dt, d);
    Tensor out = Tensor::empty({n}, dt, d);
    c->reduce_scatter_async(in, out, ReduceOp::Avg).synchronize();
    Tensor ho = out.to(Device::cpu());
    for (int64_t i = 0; i < n; i += 13) {
      double avg = sum_value(c->size(), c->rank() * n + i) / c->size();
      ASSERT_NEAR(ho.item(i), avg, dt == DType::BF16 ? avg / 128 : 1e-6 * avg);
    }

    Tensor g_in = rank_tensor(c->rank(), n, dt, d);
    Tensor g_out = Tensor::empty({n * c->size()}, dt, d);
    c->all_gather_async(g_in, g_out).synchronize();
    Tensor hg = g_out.to(Device::cpu());
    for (int r = 0; r < c->size(); ++r)
      for (int64_t i = 0; i < n; i += 13) ASSERT_EQ(hg.item(r * n + i), value(r, i));

    Tensor b = rank_tensor(c->rank(), 100, dt, d);
    c->broadcast_async(b, 0).synchronize();
    ASSERT_EQ(b.to(Device::cpu()).item(5), value(0, 5));
  }
  c->barrier();
}

TEST(Nccl, StreamOrderedWaitThenHostCopy) {
  NCCL_OR_SKIP(c);
  Tensor t = rank_tensor(c->rank(), 1 << 20, DType::F32, c->device());
  distributed::Work w = c->all_reduce_async(t, ReduceOp::Sum);
  w.wait();  // orders the default stream after the collective; the copy below runs after it
  Tensor host = t.to(Device::cpu());
  EXPECT_EQ(host.item(12345), sum_value(c->size(), 12345));
  EXPECT_TRUE(w.test());
}

TEST(Nccl, SplitCommunicator) {
  NCCL_OR_SKIP(c);
  auto sub = c->split(c->rank() % 2, c->rank(), "parity");
  EXPECT_STREQ(sub->backend(), "nccl");
  Tensor t = Tensor::full({8}, c->rank()).to(c->device());
  sub->all_reduce_async(t, ReduceOp::Sum).synchronize();
  double s = 0;
  for (int r = c->rank() % 2; r < c->size(); r += 2) s += r;
  EXPECT_EQ(t.to(Device::cpu()).item(0), s);
}

// The sharding core over NCCL: every strategy's toy training matches the single-process
// reference, in F32 and with bf16 parameter gathers.
TEST(Nccl, ShardedParamsOnGpu) {
  NCCL_OR_SKIP(c);
  for (auto s : {distributed::ShardStrategy::NoShard, distributed::ShardStrategy::ShardGradOp,
                 distributed::ShardStrategy::FullShard}) {
    SCOPED_TRACE(distributed::strategy_name(s));
    distributed::ShardingOptions o;
    o.strategy = s;
    o.bucket_numel = 64;
    auto r = test::train_toy(c.get(), o, c->device(), 2, 2);
    EXPECT_LE(r.max_diff, 2e-6);
    o.param_dtype = DType::BF16;
    o.comm_dtype = DType::BF16;
    EXPECT_LE(test::train_toy(c.get(), o, c->device(), 1, 2).max_diff, 0.05);
  }
}

}  // namespace
}  // namespace rae
