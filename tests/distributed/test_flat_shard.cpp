// Sharding core: flat layouts, one block under each strategy, and a toy model trained for a few
// SGD steps with the full FSDP schedule (prefetch, per-block reduce-scatter, gradient
// accumulation) whose parameters must match a single-process reference. Run alone and under
// mpirun -np 2|3|4 (and np 4 with RAE_DIST_NODE_SIZE=2 for real hybrid groups).
#include <gtest/gtest.h>

#include <map>

#include "distributed/flat_shard.h"
#include "mpi_env.h"
#include "support/util.h"

namespace rae {
namespace {

using distributed::FlatLayout;
using distributed::ShardStrategy;
using test::world;

const ShardStrategy kStrategies[] = {ShardStrategy::NoShard, ShardStrategy::ShardGradOp,
                                     ShardStrategy::FullShard, ShardStrategy::HybridShard};

std::vector<std::pair<std::string, Shape>> block_params(int b) {
  // Odd sizes, so that no block divides evenly by the world size.
  return {{"blk" + std::to_string(b) + ".w", Shape{3, 5 + 2 * b}},
          {"blk" + std::to_string(b) + ".b", Shape{7}},
          {"blk" + std::to_string(b) + ".g", Shape{1, 1, 11 + b}}};
}

TEST(FlatLayout, AlignsPadsAndCoversEveryElementOnce) {
  for (int shards = 1; shards <= 5; ++shards) {
    for (int64_t align : {1, 16}) {
      FlatLayout l = distributed::make_flat_layout(block_params(1), shards, align);
      EXPECT_EQ(l.padded_numel % shards, 0);
      EXPECT_GE(l.padded_numel, l.used_numel);
      EXPECT_LT(l.padded_numel - l.used_numel, shards);
      EXPECT_EQ(l.param_numel(), 3 * 7 + 7 + 12);
      for (const auto& e : l.entries) EXPECT_EQ(e.offset % align, 0) << e.name;
      // Every parameter element lands in exactly one shard, at the matching flat offset.
      std::map<int, std::vector<int>> seen;
      for (const auto& e : l.entries) seen[l.find(e.name)].assign(e.numel, 0);
      for (int r = 0; r < shards; ++r) {
        for (const auto& p : l.pieces_in_shard(r)) {
          const auto& e = l.entries[p.entry];
          EXPECT_EQ(l.shard_begin(r) + p.shard_offset, e.offset + p.entry_begin);
          for (int64_t i = p.entry_begin; i < p.entry_end; ++i) seen[p.entry][i]++;
        }
      }
      for (auto& [entry, counts] : seen)
        for (int c : counts) ASSERT_EQ(c, 1) << "shards " << shards << " entry " << entry;
    }
  }
  EXPECT_THROW(distributed::make_flat_layout({{"a", Shape{2}}, {"a", Shape{3}}}, 2), Error);
  EXPECT_EQ(distributed::parse_strategy("hybrid_shard"), ShardStrategy::HybridShard);
  EXPECT_THROW(distributed::parse_strategy("zero3"), Error);
}

// Rank r's "data" for micro-batch m and block b: the toy loss is 0.5 |w - d|^2 / M per
// micro-batch, so the averaged gradient is w - mean over (rank, micro) of d.
Tensor data_for(int r, int m, int num_micro, int b, int64_t n) {
  return test::randn({n}, 1000 * (b + 1) + r * num_micro + m);
}

struct ToyRun {
  std::vector<Tensor> params;  // the full values after training (from rank 0's gather)
  int64_t peak_bytes = 0, end_bytes = 0;
  distributed::MemoryPlan plan;
};

// Trains the toy model for `steps` SGD steps under `s`, checking at every forward that the
// gathered parameters equal the single-process reference within `tol`.
ToyRun train_toy(ShardStrategy s, DType comm_dtype, int num_micro, int steps, double tol) {
  auto& w = world();
  const int num_blocks = 4;
  const float lr = 0.3f;
  distributed::ShardGroups groups = distributed::ShardGroups::make(w, s);
  std::vector<FlatLayout> layouts;
  for (int b = 0; b < num_blocks; ++b)
    layouts.push_back(distributed::make_flat_layout(block_params(b), groups.shard_size()));

  // Reference parameters (the same on every rank): initial values, then exact SGD on the mean.
  std::vector<Tensor> ref(num_blocks);
  for (int b = 0; b < num_blocks; ++b) ref[b] = test::randn({layouts[b].used_numel}, 7 + b);

  ToyRun out;
  out.plan = distributed::plan_memory(layouts, s, 0, comm_dtype);
  distributed::reset_sharded_bytes_peak();
  {
    distributed::ShardedModel model(layouts, groups, Device::cpu(), comm_dtype);
    for (int b = 0; b < num_blocks; ++b) model.block(b).load_full(ref[b]);
    for (int step = 0; step < steps; ++step) {
      for (int m = 0; m < num_micro; ++m) {
        model.begin_micro_batch(m, num_micro);
        for (int b = 0; b < num_blocks; ++b) {
          model.pre_forward(b);
          Tensor used = model.block(b).full().narrow(0, 0, layouts[b].used_numel);
          EXPECT_LE(test::max_abs_diff(used, ref[b]), tol)
              << distributed::strategy_name(s) << " step " << step << " block " << b;
          model.post_forward(b);
        }
        for (int b = num_blocks - 1; b >= 0; --b) {
          model.pre_backward(b);
          auto& blk = model.block(b);
          const int64_t n = layouts[b].used_numel;
          Tensor d = data_for(w.rank(), m, num_micro, b, n);
          float* g = blk.grad_full().data<float>();
          const float* p = blk.full().data<float>();
          for (int64_t i = 0; i < n; ++i) g[i] += (p[i] - d.data<float>()[i]) / num_micro;
          model.post_backward(b);
        }
      }
      model.finish_backward();
      for (int b = 0; b < num_blocks; ++b) {  // SGD on the owned shard
        auto& blk = model.block(b);
        float* p = blk.shard().data<float>();
        const float* g = blk.grad_shard().data<float>();
        for (int64_t i = 0; i < blk.shard().numel(); ++i) p[i] -= lr * g[i];
      }
      model.after_step();
      // Reference step: w -= lr * (w - mean d).
      for (int b = 0; b < num_blocks; ++b) {
        const int64_t n = layouts[b].used_numel;
        std::vector<double> mean(n, 0.0);
        for (int r = 0; r < w.size(); ++r)
          for (int m = 0; m < num_micro; ++m) {
            Tensor d = data_for(r, m, num_micro, b, n);
            for (int64_t i = 0; i < n; ++i) mean[i] += d.data<float>()[i];
          }
        float* p = ref[b].data<float>();
        for (int64_t i = 0; i < n; ++i)
          p[i] -= lr * (p[i] - static_cast<float>(mean[i] / (w.size() * num_micro)));
      }
    }
    // Final parameters, gathered once more.
    for (int b = 0; b < num_blocks; ++b) {
      model.pre_forward(b);
      out.params.push_back(model.block(b).full().narrow(0, 0, layouts[b].used_numel).clone());
      EXPECT_LE(test::max_abs_diff(out.params.back(), ref[b]), tol) << distributed::strategy_name(s);
      // Padding never picks up values (its gradients are zero).
      const Tensor& full = model.block(b).full();
      for (int64_t i = layouts[b].used_numel; i < layouts[b].padded_numel; ++i)
        EXPECT_EQ(full.item(i), 0.0);
      model.post_forward(b);
    }
    for (int b = 0; b < num_blocks; ++b) model.block(b).release();
    out.peak_bytes = distributed::sharded_bytes_peak();
    out.end_bytes = distributed::sharded_bytes_now();
  }
  EXPECT_EQ(distributed::sharded_bytes_now(), 0);
  return out;
}

TEST(ShardedModel, EveryStrategyMatchesTheSingleProcessReference) {
  for (ShardStrategy s : kStrategies) {
    SCOPED_TRACE(distributed::strategy_name(s));
    // f32 gradients: only the summation order differs from the reference.
    ToyRun run = train_toy(s, DType::F32, 1, 3, 2e-6);
    EXPECT_LE(run.peak_bytes, run.plan.total()) << run.plan.str();
    EXPECT_EQ(run.end_bytes, run.plan.param_bytes + run.plan.grad_bytes) << run.plan.str();
  }
}

TEST(ShardedModel, GradientAccumulationOverMicroBatches) {
  for (ShardStrategy s : kStrategies) {
    SCOPED_TRACE(distributed::strategy_name(s));
    ToyRun run = train_toy(s, DType::F32, 3, 2, 2e-6);
    EXPECT_LE(run.peak_bytes, run.plan.total()) << run.plan.str();
  }
}

TEST(ShardedModel, Bf16GradientCommunication) {
  for (ShardStrategy s : kStrategies) {
    SCOPED_TRACE(distributed::strategy_name(s));
    // bf16 rounds each gradient (and partial sum) to 8 bits: |g| < ~4, lr 0.3, 2 steps and
    // two rounding stages under hybrid give errors well below 0.03.
    ToyRun run = train_toy(s, DType::BF16, 2, 2, 0.03);
    EXPECT_LE(run.peak_bytes, run.plan.total()) << run.plan.str();
  }
}

TEST(ShardedModel, StrategiesAgreeWithEachOther) {
  ToyRun a = train_toy(ShardStrategy::NoShard, DType::F32, 1, 2, 2e-6);
  ToyRun b = train_toy(ShardStrategy::FullShard, DType::F32, 1, 2, 2e-6);
  for (size_t i = 0; i < a.params.size(); ++i)
    EXPECT_LE(test::max_abs_diff(a.params[i], b.params[i]), 2e-6);
}

TEST(ShardGroups, HybridGroupsFollowTheNodes) {
  auto& w = world();
  distributed::ShardGroups g = distributed::ShardGroups::make(w, ShardStrategy::HybridShard);
  EXPECT_EQ(g.shard->size(), w.local_size());
  EXPECT_EQ(g.shard->rank(), w.local_rank());
  EXPECT_EQ(g.replicate->size(), w.num_nodes());
  EXPECT_EQ(g.replicate->rank(), w.node_rank());
  // Sum of world ranks inside my node, and across the nodes at my local rank.
  Tensor t = Tensor::full({1}, w.rank());
  g.shard->all_reduce(t);
  double node_sum = 0;
  for (int r = 0; r < w.size(); ++r)
    if (r / w.local_size() == w.node_rank()) node_sum += r;
  EXPECT_EQ(t.item(0), node_sum);
  Tensor u = Tensor::full({1}, w.rank());
  g.replicate->all_reduce(u);
  double rep_sum = 0;
  for (int r = 0; r < w.size(); ++r)
    if (r % w.local_size() == w.local_rank()) rep_sum += r;
  EXPECT_EQ(u.item(0), rep_sum);
}

TEST(MemoryPlan, ShardingDividesTheStateByTheGroupSize) {
  std::vector<FlatLayout> one, eight;
  for (int b = 0; b < 28; ++b) {
    one.push_back(distributed::make_flat_layout({{"w", Shape{1000, 1000}}}, 1));
    eight.push_back(distributed::make_flat_layout({{"w", Shape{1000, 1000}}}, 8));
  }
  auto ddp = distributed::plan_memory(one, ShardStrategy::NoShard, 3);
  auto z2 = distributed::plan_memory(eight, ShardStrategy::ShardGradOp, 3);
  auto z3 = distributed::plan_memory(eight, ShardStrategy::FullShard, 3);
  EXPECT_EQ(ddp.param_bytes, 28 * 4000000);
  EXPECT_EQ(ddp.optimizer_bytes, 3 * 28 * 4000000);
  EXPECT_EQ(z2.param_bytes, 28 * 4000000);
  EXPECT_EQ(z2.grad_bytes, 28 * 500000);
  EXPECT_EQ(z3.param_bytes, 28 * 500000);
  EXPECT_LT(z3.total(), z2.total());
  EXPECT_LT(z2.total(), ddp.total());
}

}  // namespace
}  // namespace rae
