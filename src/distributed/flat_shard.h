// Sharding core, independent of the model: each block's parameters live in one flat F32 buffer
// (FlatLayout), padded so that it splits into equal contiguous shards, one per rank of the shard
// group. FlatParamBlock runs one block's collectives for a strategy; ShardedModel schedules them
// over a sequence of blocks (gather before use with prefetch of the next block, async
// reduce-scatter of gradients after backward). Layouts do not depend on the world size except for
// the tail padding, so a checkpoint written by N ranks can be re-sharded for M.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "distributed/communicator.h"

namespace rae::distributed {

// The FSDP names: NO_SHARD (DDP), SHARD_GRAD_OP (ZeRO-2), FULL_SHARD (ZeRO-3), HYBRID_SHARD
// (full shard inside a node, replicas across nodes).
enum class ShardStrategy { NoShard, ShardGradOp, FullShard, HybridShard };
const char* strategy_name(ShardStrategy s);  // "no_shard", ...
ShardStrategy parse_strategy(const std::string& name);

struct FlatLayout {
  struct Entry {
    std::string name;
    Shape shape;
    int64_t offset = 0;  // element offset in the flat buffer (aligned)
    int64_t numel = 0;
  };
  // A contiguous run of one parameter inside one shard.
  struct Piece {
    int entry = 0;
    int64_t entry_begin = 0, entry_end = 0;  // element range within the parameter
    int64_t shard_offset = 0;                // where the run starts inside the shard
  };
  std::vector<Entry> entries;
  int64_t used_numel = 0;    // end of the last parameter (alignment holes included)
  int64_t padded_numel = 0;  // multiple of `shards`
  int shards = 1;

  int64_t shard_numel() const { return padded_numel / shards; }
  int64_t shard_begin(int r) const { return static_cast<int64_t>(r) * shard_numel(); }
  int64_t param_numel() const;  // sum of the parameters' elements
  std::vector<Piece> pieces_in_shard(int r) const;
  int find(const std::string& name) const;  // entry index or -1
};

// Lays out `params` (name, shape) in order; each offset is a multiple of `align` elements
// (64 bytes by default, for vector loads) and the total is padded to a multiple of `shards`.
FlatLayout make_flat_layout(const std::vector<std::pair<std::string, Shape>>& params, int shards,
                            int64_t align = 16);

// The communicators a strategy uses. shard: ranks that split params/grads/optimizer state
// (null = this rank alone); replicate: ranks that all-reduce the (sharded) gradients
// (null = none). no_shard: (null, world); shard_grad_op/full_shard: (world, null);
// hybrid_shard: (ranks of my node, ranks with my local rank on every node).
struct ShardGroups {
  ShardStrategy strategy = ShardStrategy::NoShard;
  Communicator* shard = nullptr;
  Communicator* replicate = nullptr;
  std::unique_ptr<Communicator> owned_shard, owned_replicate;

  int shard_size() const { return shard ? shard->size() : 1; }
  int shard_rank() const { return shard ? shard->rank() : 0; }
  // Collective over `world` for hybrid_shard (two splits); every rank must call it.
  static ShardGroups make(Communicator& world, ShardStrategy s);
};

// Bytes a rank holds for a strategy (F32 params, grads and optimizer state).
struct MemoryPlan {
  int64_t param_bytes = 0;      // persistent parameters (shard or full)
  int64_t grad_bytes = 0;       // persistent gradients (shard or full)
  int64_t optimizer_bytes = 0;  // optimizer state (+ EMA) for the owned parameters
  int64_t transient_bytes = 0;  // peak of gathered blocks and unreduced gradient buffers
  int64_t total() const { return param_bytes + grad_bytes + optimizer_bytes + transient_bytes; }
  std::string str() const;
};
// `states_per_param`: F32 numbers of optimizer state per parameter (AdamW 2, plus 1 with EMA).
// comm_dtype BF16 adds the bf16 staging copies of gradients.
MemoryPlan plan_memory(const std::vector<FlatLayout>& blocks, ShardStrategy s, int states_per_param,
                       DType comm_dtype = DType::F32);

// Bytes currently held by all FlatParamBlocks of this process, and the peak since reset.
int64_t sharded_bytes_now();
int64_t sharded_bytes_peak();
void reset_sharded_bytes_peak();
void track_sharded_bytes(int64_t delta);  // used by FlatParamBlock

// One block under a strategy. Buffers:
//   shard()      the parameters this rank owns (the optimizer updates these); no_shard: all of
//                them; shard_grad_op: a view of this rank's chunk of the full buffer.
//   full()       all parameters of the block, valid between gather and release.
//   grad_full()  backward accumulates here (zeroed by begin_backward).
//   grad_shard() the averaged gradients of the owned parameters after reduce_grads.
class FlatParamBlock {
 public:
  FlatParamBlock(FlatLayout layout, ShardGroups& groups, Device device, DType comm_dtype);
  ~FlatParamBlock();
  FlatParamBlock(const FlatParamBlock&) = delete;
  FlatParamBlock& operator=(const FlatParamBlock&) = delete;

  const FlatLayout& layout() const { return layout_; }
  ShardStrategy strategy() const { return groups_->strategy; }
  const Tensor& shard() const { return shard_; }
  const Tensor& grad_shard() const { return grad_shard_; }
  const Tensor& full() const;
  const Tensor& grad_full() const;
  bool gathered() const { return full_.defined(); }
  // Views of parameter i (its shape) in the full buffers.
  Tensor param(int i) const;
  Tensor grad(int i) const;

  // Sets the owned parameters from the whole block's values (`full_values`: padded_numel or
  // used_numel F32 elements, identical on every rank), e.g. after initialisation.
  void load_full(const Tensor& full_values);

  // Starts the all-gather of the shards into full() (no-op when already gathered).
  Work gather_async();
  // Drops full() under full/hybrid sharding (persistent otherwise).
  void release();
  // Allocates and zeroes grad_full().
  void begin_backward();
  // Starts the gradient reduction: reduce-scatter (avg) into grad_shard(), then for hybrid the
  // all-reduce (avg) across nodes; no_shard: all-reduce grad_full() in place. In comm_dtype.
  // `accumulate_into_shard` adds the result to grad_shard() (gradient accumulation over
  // micro-batches under the sharded strategies; no_shard accumulates in grad_full() instead).
  Work reduce_grads_async(bool accumulate_into_shard = false);
  // Frees grad_full() under the sharded strategies once the reduction is done.
  void release_grads();
  // After the optimizer updated shard(): shard_grad_op re-gathers full() (returns that work).
  Work after_step_async();

 private:
  Tensor alloc(int64_t numel, DType dtype = DType::F32);
  void free_tracked(Tensor& t);

  FlatLayout layout_;
  ShardGroups* groups_;
  Device device_;
  DType comm_dtype_;
  Tensor full_, shard_, grad_full_, grad_shard_;
};

// A sequence of blocks with the FSDP schedule. Forward: pre_forward(i) waits for block i's
// parameters and prefetches block i+1; post_forward(i) releases i (except the last block, which
// backward needs first). Backward (blocks in reverse): pre_backward(i) waits for i and prefetches
// i-1; post_backward(i) starts i's gradient reduction and releases its parameters.
// finish_backward() waits for every reduction; after_step() re-gathers for shard_grad_op.
// Every rank must make the same calls in the same order (the collectives follow them).
class ShardedModel {
 public:
  ShardedModel(const std::vector<FlatLayout>& layouts, ShardGroups& groups, Device device,
               DType comm_dtype = DType::F32, bool prefetch = true);
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  FlatParamBlock& block(int i) { return *blocks_[i]; }

  // Gradient accumulation: micro-batch `micro` of `num_micro` in this step (default 0 of 1).
  void begin_micro_batch(int micro, int num_micro);
  void pre_forward(int i);
  void post_forward(int i);
  void pre_backward(int i);
  void post_backward(int i);
  void finish_backward();
  void after_step();

 private:
  void ensure_gather(int i);
  void wait_gather(int i);
  void drain_reductions();  // waits for every outstanding reduction, frees gradient buffers

  std::vector<std::unique_ptr<FlatParamBlock>> blocks_;
  std::vector<Work> gathers_, reductions_;
  bool prefetch_;
  int micro_ = 0, num_micro_ = 1;
};

}  // namespace rae::distributed
