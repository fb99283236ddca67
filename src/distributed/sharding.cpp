#include "distributed/sharding.h"

#include "core/error.h"

namespace rae::distributed {

const char* strategy_name(ShardStrategy s) {
  switch (s) {
    case ShardStrategy::NoShard:
      return "no_shard";
    case ShardStrategy::ShardGradOp:
      return "shard_grad_op";
    case ShardStrategy::FullShard:
      return "full_shard";
    case ShardStrategy::HybridShard:
      return "hybrid_shard";
  }
  return "?";
}

ShardStrategy parse_strategy(const std::string& name) {
  for (ShardStrategy s : {ShardStrategy::NoShard, ShardStrategy::ShardGradOp,
                          ShardStrategy::FullShard, ShardStrategy::HybridShard})
    if (name == strategy_name(s)) return s;
  RAE_THROW("unknown shard strategy '", name,
            "' (expected no_shard, shard_grad_op, full_shard or hybrid_shard)");
}

bool frees_params(ShardStrategy s) {
  return s == ShardStrategy::FullShard || s == ShardStrategy::HybridShard;
}

ShardGroups ShardGroups::make(Communicator* world, ShardStrategy s) {
  ShardGroups g;
  g.strategy = s;
  if (!world) return g;
  switch (s) {
    case ShardStrategy::NoShard:
      g.replicate = world;
      break;
    case ShardStrategy::ShardGradOp:
    case ShardStrategy::FullShard:
      g.shard = world;
      break;
    case ShardStrategy::HybridShard: {
      // Every node must have the same number of ranks so that the replica groups line up.
      Tensor sizes = Tensor::empty({world->size()}, DType::I32, world->device());
      Tensor mine = Tensor::full({1}, world->local_size(), DType::I32).to(world->device());
      world->all_gather_async(mine, sizes).synchronize();
      Tensor host = sizes.to(Device::cpu());
      for (int r = 0; r < world->size(); ++r)
        RAE_CHECK(host.data<int32_t>()[r] == world->local_size(),
                  "hybrid_shard needs equal ranks per node: rank ", r, " has ",
                  host.data<int32_t>()[r], ", rank ", world->rank(), " has ", world->local_size());
      g.owned_shard = world->split(world->node_rank(), world->rank(), "shard");
      g.owned_replicate = world->split(world->local_rank(), world->rank(), "replicate");
      g.shard = g.owned_shard.get();
      g.replicate = g.owned_replicate.get();
      break;
    }
  }
  return g;
}

}  // namespace rae::distributed
