// The sharding core (distributed/sharded_params.h) on a toy module: bucket plans, the pieces a
// checkpoint reads and writes, and a few SGD steps under every strategy, gradient communication
// dtype, bucket size and micro-batch count, checked at every use of every parameter against the
// exact single-process reference. Run alone and under mpirun -np 2|3|4 (and np 4 with
// RAE_DIST_NODE_SIZE=2 for real hybrid groups). With a GPU the same runs go through the MPI
// communicator with CUDA tensors (staged through the host): the device check runs this binary as
// two ranks on one GPU.
#include <gtest/gtest.h>

#include <map>

#include "core/device.h"
#include "distributed/bucket_plan.h"
#include "mpi_env.h"
#include "support/util.h"
#include "toy_module.h"

namespace rae {
namespace {

using distributed::ShardStrategy;
using test::world;

const ShardStrategy kStrategies[] = {ShardStrategy::NoShard, ShardStrategy::ShardGradOp,
                                     ShardStrategy::FullShard, ShardStrategy::HybridShard};

distributed::ShardingOptions options(ShardStrategy s, DType comm = DType::F32,
                                     int64_t bucket = int64_t(1) << 20) {
  distributed::ShardingOptions o;
  o.strategy = s;
  o.comm_dtype = comm;
  o.bucket_numel = bucket;
  return o;
}

TEST(BucketPlan, BucketsTileSegmentsAndShardsCoverEveryElementOnce) {
  const std::vector<int64_t> groups = {10, 1000, 37, 5000, 3};
  for (int shards = 1; shards <= 5; ++shards) {
    for (int64_t cap : {int64_t(64), int64_t(700), int64_t(1) << 20}) {
      auto p = distributed::make_bucket_plan(groups, {1, 3}, shards, cap);
      ASSERT_EQ(p.segments.size(), groups.size());
      EXPECT_EQ(p.block_segments, (std::vector<int>{1, 3}));
      for (size_t s = 0; s < groups.size(); ++s) {
        const auto& seg = p.segments[s];
        std::vector<int> seen(groups[s], 0);
        int64_t end = 0;
        for (int b = seg.first_bucket; b < seg.first_bucket + seg.num_buckets; ++b) {
          const auto& bk = p.buckets[b];
          EXPECT_EQ(bk.offset, end) << "buckets tile the segment";
          EXPECT_LE(bk.numel, std::max<int64_t>(cap, 16 * shards));
          EXPECT_EQ(bk.padded, bk.shard_numel * shards);
          EXPECT_EQ(bk.shard_numel % 16, 0);
          end = bk.offset + bk.padded;
          for (int r = 0; r < shards; ++r) {
            auto own = p.owned(b, r);
            for (int64_t i = 0; i < own.count; ++i) seen[own.first + i]++;
          }
        }
        EXPECT_EQ(end, seg.numel);
        for (int c : seen) ASSERT_EQ(c, 1) << "shards " << shards << " cap " << cap;
      }
    }
  }
  EXPECT_THROW(distributed::make_bucket_plan({4, 4}, {1, 0}, 2, 100), Error);
  EXPECT_EQ(distributed::parse_strategy("hybrid_shard"), ShardStrategy::HybridShard);
  EXPECT_THROW(distributed::parse_strategy("zero3"), Error);
}

// The checkpoint view: over all shard ranks, every element of every parameter is in exactly one
// piece, at the place of the master that holds it.
TEST(ShardedParams, PiecesCoverEveryParameterOnce) {
  test::ToyModule m(3);
  m.init(1);
  distributed::ShardGroups g = distributed::ShardGroups::make(&world(), ShardStrategy::FullShard);
  distributed::ShardedParams sp(m, g, Device::cpu(),
                                options(ShardStrategy::FullShard, DType::F32, 40));
  const auto& ps = m.params();
  std::map<int, std::vector<int>> seen;
  for (size_t i = 0; i < ps.params().size(); ++i) seen[i].assign(ps.params()[i].shape.numel(), 0);
  for (int r = 0; r < sp.shard_count(); ++r)
    for (const auto& piece : sp.pieces(r))
      for (int64_t i = piece.begin; i < piece.end; ++i) seen[piece.param][i]++;
  for (auto& [id, counts] : seen)
    for (int c : counts) ASSERT_EQ(c, 1) << ps.params()[id].name;
  // My pieces are my masters' values (the init values, identical on every rank).
  test::ToyModule ref(3);
  ref.init(1);
  for (const auto& piece : sp.pieces(sp.shard_rank())) {
    Tensor want =
        ref.params().value(piece.param).flatten().narrow(0, piece.begin, piece.end - piece.begin);
    Tensor got = sp.masters()[piece.bucket].narrow(0, piece.shard_offset, piece.end - piece.begin);
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0);
  }
}

TEST(ShardedParams, EveryStrategyMatchesTheSingleProcessReference) {
  for (ShardStrategy s : kStrategies) {
    for (int64_t bucket : {int64_t(1) << 20, int64_t(48)}) {  // whole groups, then small buckets
      SCOPED_TRACE(std::string(distributed::strategy_name(s)) + " bucket " +
                   std::to_string(bucket));
      // f32: only the summation order differs from the reference.
      auto r = test::train_toy(&world(), options(s, DType::F32, bucket), Device::cpu(), 1, 3);
      EXPECT_LE(r.max_diff, 2e-6);
    }
  }
}

TEST(ShardedParams, GradientAccumulationOverMicroBatches) {
  for (ShardStrategy s : kStrategies) {
    SCOPED_TRACE(distributed::strategy_name(s));
    auto r = test::train_toy(&world(), options(s, DType::F32, 64), Device::cpu(), 3, 2);
    EXPECT_LE(r.max_diff, 2e-6);
  }
}

TEST(ShardedParams, Bf16GradientCommunication) {
  for (ShardStrategy s : kStrategies) {
    SCOPED_TRACE(distributed::strategy_name(s));
    // bf16 rounds each gradient (and partial sum) to 8 bits: |g| < ~4, lr 0.3, 2 steps and
    // two rounding stages under hybrid give errors well below 0.03.
    auto r = test::train_toy(&world(), options(s, DType::BF16), Device::cpu(), 2, 2);
    EXPECT_LE(r.max_diff, 0.03);
  }
}

TEST(ShardedParams, StrategiesAgreeAndOneProcessIsWorldOne) {
  auto a = test::train_toy(&world(), options(ShardStrategy::NoShard), Device::cpu(), 1, 2);
  auto b = test::train_toy(&world(), options(ShardStrategy::FullShard, DType::F32, 64),
                           Device::cpu(), 1, 2);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i)
    EXPECT_LE(test::max_abs_diff(a.params[i], b.params[i]), 2e-6);
  if (world().size() == 1) {  // no communicator at all: the single-process trainer's path
    auto c = test::train_toy(nullptr, options(ShardStrategy::NoShard), Device::cpu(), 1, 2);
    for (size_t i = 0; i < a.params.size(); ++i)
      EXPECT_LE(test::max_abs_diff(a.params[i], c.params[i]), 2e-6);
  }
}

// full_shard holds less than shard_grad_op, which holds less than no_shard (params + grads).
TEST(ShardedParams, MemoryOrderOfTheStrategies) {
  if (world().size() < 4) GTEST_SKIP() << "needs 4 ranks";
  std::map<ShardStrategy, int64_t> peak;
  for (ShardStrategy s :
       {ShardStrategy::NoShard, ShardStrategy::ShardGradOp, ShardStrategy::FullShard})
    peak[s] = test::train_toy(&world(), options(s), Device::cpu(), 1, 1, 8, 100).peak_bytes;
  EXPECT_LT(peak[ShardStrategy::FullShard], peak[ShardStrategy::ShardGradOp]);
  EXPECT_LT(peak[ShardStrategy::ShardGradOp], peak[ShardStrategy::NoShard]);
}

TEST(ShardGroups, HybridGroupsFollowTheNodes) {
  auto& w = world();
  distributed::ShardGroups g = distributed::ShardGroups::make(&w, ShardStrategy::HybridShard);
  EXPECT_EQ(g.shard->size(), w.local_size());
  EXPECT_EQ(g.shard->rank(), w.local_rank());
  EXPECT_EQ(g.replicate->size(), w.num_nodes());
  EXPECT_EQ(g.replicate->rank(), w.node_rank());
  Tensor t = Tensor::full({1}, w.rank());
  g.shard->all_reduce(t);
  double node_sum = 0;
  for (int r = 0; r < w.size(); ++r)
    if (r / w.local_size() == w.node_rank()) node_sum += r;
  EXPECT_EQ(t.item(0), node_sum);
}

// The GPU path over the MPI communicator (CUDA tensors staged through the host): ZeRO-3 gathers
// into device buffers, frees, reduce-scatters; bf16 gathers of bf16 shard copies.
TEST(ShardedParamsCuda, MpiWithDeviceBuffersMatchesTheReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (ShardStrategy s : kStrategies) {
    SCOPED_TRACE(distributed::strategy_name(s));
    auto r = test::train_toy(&world(), options(s, DType::F32, 64), Device::cuda(), 2, 2);
    EXPECT_LE(r.max_diff, 2e-6);
    auto o = options(s, DType::F32, 64);
    o.param_dtype = DType::BF16;  // values are used in bf16: 8-bit rounding of |p| < ~4
    auto b = test::train_toy(&world(), o, Device::cuda(), 1, 2);
    EXPECT_LE(b.max_diff, 0.05);
  }
}

}  // namespace
}  // namespace rae
