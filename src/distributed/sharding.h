// Sharding strategies and the communicators each one uses (the FSDP names):
//   no_shard       (DDP)    every rank holds everything; gradients all-reduced
//   shard_grad_op  (ZeRO-2) parameters whole; gradients and optimizer state sharded
//   full_shard     (ZeRO-3) parameters, gradients and optimizer state sharded
//   hybrid_shard            full_shard inside a node, replicas across nodes
// The sharding core itself is distributed/sharded_params.h.
#pragma once
#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace rae::distributed {

enum class ShardStrategy { NoShard, ShardGradOp, FullShard, HybridShard };
const char* strategy_name(ShardStrategy s);  // "no_shard", ...
ShardStrategy parse_strategy(const std::string& name);
// Whether the strategy keeps only a shard of the parameters between uses (full / hybrid).
bool frees_params(ShardStrategy s);

// The communicators of a strategy. shard: ranks that split parameters, gradients and optimizer
// state (null = this rank alone); replicate: ranks holding the same shard, whose gradients are
// summed (null = none). no_shard: (null, world); shard_grad_op / full_shard: (world, null);
// hybrid_shard: (ranks of my node, ranks with my local rank on every node). A world of one rank
// (`world` null) has neither.
struct ShardGroups {
  ShardStrategy strategy = ShardStrategy::NoShard;
  Communicator* shard = nullptr;
  Communicator* replicate = nullptr;
  std::unique_ptr<Communicator> owned_shard, owned_replicate;

  int shard_size() const { return shard ? shard->size() : 1; }
  int shard_rank() const { return shard ? shard->rank() : 0; }
  int replica_rank() const { return replicate ? replicate->rank() : 0; }
  // Collective over `world` for hybrid_shard (two splits); every rank must call it.
  static ShardGroups make(Communicator* world, ShardStrategy s);
};

}  // namespace rae::distributed
