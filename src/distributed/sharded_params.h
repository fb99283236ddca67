// The sharding core, the same on every device: where a model's parameters, gradients and
// optimizer-visible shards live, and the collectives that move them. Single-process training is
// world size 1 of it (no communicators; no_shard keeps the model's values in place).
//
// Layout: distributed/bucket_plan.h (one segment per parameter group, cut into size-capped
// buckets, each split into equal shards). Per bucket this rank owns one shard:
//   master  F32 values of its shard (no_shard / shard_grad_op in F32: a view of the full buffer)
//   grad    F32 gradient sum over all ranks and micro-batches of its shard (after
//           finish_gradients); no_shard: a view of the persistent full gradient
// Per segment the model computes with a full buffer in `param_dtype`: F32, or BF16 under bf16
// precision (CUDA): a bf16 shadow of the masters (no_shard), refreshed by publish(), or bf16
// gathers of bf16 shard copies (shard_grad_op, full_shard, hybrid_shard), so no GEMM casts F32
// weights. Gradients are always accumulated in F32 and travel in `comm_dtype`.
//
//   strategy       full params          full grads             reductions (Sum)
//   no_shard       persistent           persistent             all-reduce, last micro-batch
//   shard_grad_op  persistent           per block backward     reduce-scatter, every micro-batch
//   full_shard     gathered per use     per block backward     reduce-scatter, every micro-batch
//   hybrid_shard   full_shard within a node, then an all-reduce of the shard across nodes
//
// Schedule (as FSDP): the object installs itself as the model's BlockHooks. Forward: before
// block k its segment is gathered (waited for) and block k+1's gather is issued (prefetch);
// after block k it is released (full_shard; the last block stays for backward). Backward:
// before block k it is gathered again (prefetching k-1) and a zeroed gradient buffer is bound;
// after block k its reduction is issued and the previous block's reduction completed, so one
// reduction is always in flight behind the compute and at most two blocks' gathered parameters
// and gradients exist at once, whatever the block sizes. Root groups (embedders, final layer)
// are gathered at the start of a micro-batch and kept for the whole step; their gradients are
// reduced at the end of each micro-batch. On the GPU the NCCL communicator runs collectives on
// its own stream, ordered against the compute stream by events (Work::wait blocks no host); over
// MPI (CPU tensors, or CUDA tensors staged through host memory) every hook polls the
// collectives in flight, since MPI progresses them only inside MPI calls.
//
// Every rank makes the same calls in the same order (the collectives follow them).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "distributed/bucket_plan.h"
#include "distributed/sharding.h"
#include "nn/module.h"

namespace rae::distributed {

struct ShardingOptions {
  ShardStrategy strategy = ShardStrategy::NoShard;
  DType param_dtype = DType::F32;            // what the model computes with: F32, or BF16 (CUDA)
  DType comm_dtype = DType::F32;             // gradients on the wire: F32 or BF16
  int64_t bucket_numel = int64_t(25) << 20;  // elements per bucket at most (100 MiB of F32)
};

class ShardedParams : public nn::BlockHooks {
 public:
  // Takes over `model`'s parameters: their current values (on `device`: move the model there
  // first) become every rank's initial masters, identical on all ranks (the same seed), and the
  // model's parameter groups are bound to this object's buffers from now on. Installs itself as
  // the model's block hooks (removed by the destructor).
  ShardedParams(nn::Module& model, ShardGroups& groups, Device device, const ShardingOptions& o);
  ~ShardedParams() override;
  ShardedParams(const ShardedParams&) = delete;
  ShardedParams& operator=(const ShardedParams&) = delete;

  const BucketPlan& plan() const { return plan_; }
  const ShardingOptions& options() const { return opts_; }
  const ShardGroups& groups() const { return groups_; }
  Device device() const { return device_; }
  nn::Module& model() { return model_; }

  // ---- one optimizer step ----
  // Micro-batch `micro` of `num_micro`; micro 0 zeroes the gradients.
  void begin_micro_batch(int micro, int num_micro);
  // After the micro-batch's backward: reduces the root groups and completes every reduction.
  void end_micro_batch();
  // After the last micro-batch: grads() hold the sums over ranks and micro-batches.
  void finish_gradients();
  // Sum of squares of the summed gradient, each element counted once (collective over the shard
  // group), in a fixed order (deterministic on the CPU).
  double grad_sum_squares();
  // After the masters changed (optimizer step, checkpoint load): refreshes what the model
  // computes with (bf16 shadows, shard_grad_op's all-gather; full_shard gathers on use).
  void publish();
  // Freezes (false) or unfreezes the parameters' gradients: while frozen the model's gradient
  // views are unbound, so its backward computes only input gradients (e.g. a discriminator
  // inside the generator's loss), and the hooks reduce nothing. Every rank toggles alike.
  // A trainable model runs at most one backward per micro-batch (its blocks' gradients are
  // reduced as each finishes); a second one is an error: sum the losses into one backward.
  void set_trainable(bool trainable);
  bool trainable() const { return trainable_; }

  // Every parameter group's full F32 values (ParamStore group order, flat, the group's numel)
  // from per-bucket shards laid out like masters() (e.g. the optimizer's EMA weights, to
  // evaluate the EMA model during a run): an all-gather per bucket over the shard group (every
  // rank of it calls it alike), copies with one shard.
  std::vector<Tensor> gather_groups(const std::vector<Tensor>& shards) const;

  // The owned shards, one per bucket (plan().buckets order), (shard_numel) F32 each: the group
  // elements plan().owned(b, shard_rank()) first, zero padding after.
  const std::vector<Tensor>& masters() const { return master_; }
  const std::vector<Tensor>& grads() const { return grad_shard_; }
  int shard_rank() const { return groups_.shard_rank(); }
  int shard_count() const { return groups_.shard_size(); }
  // One copy of each shard is written to checkpoints: by the ranks of replica 0.
  bool writes_shards() const { return groups_.replica_rank() == 0; }

  // The runs of parameter elements in shard `shard_rank` (any rank's): parameter `param`
  // (ParamStore id) elements [begin, end) sit at [shard_offset, shard_offset + end - begin) of
  // that shard of bucket `bucket`. Checkpoints are written and read through these.
  struct Piece {
    int param = 0;
    int64_t begin = 0, end = 0;
    int bucket = 0;
    int64_t shard_offset = 0;
  };
  std::vector<Piece> pieces(int shard_rank) const;

  // Parameter and gradient bytes held now / at most since reset_peak(): full buffers (persistent
  // or gathered), gradient buffers (until their reduction completes), master and gradient
  // shards; not the optimizer state.
  int64_t bytes_now() const { return bytes_now_; }
  int64_t bytes_peak() const { return bytes_peak_; }
  void reset_peak() { bytes_peak_ = bytes_now_; }
  std::string describe() const;  // strategy, shards, buckets, persistent bytes

  // nn::BlockHooks (called by the model; block k = model.block_groups()[k]).
  void before_forward(int block) override;
  void after_forward(int block) override;
  void before_backward(int block) override;
  void after_backward(int block) override;

 private:
  struct SegmentState {
    Tensor full;  // param_dtype (numel) while gathered, or persistent
    Tensor grad;  // F32 (numel) while bound, or persistent (no_shard)
    std::vector<Work> gathers;
    bool gathering = false;
  };
  struct Reduction {
    int segment = 0;
    std::vector<Work> works;
    int64_t bytes = 0;  // released from the accounting once complete
  };

  bool sharded() const { return opts_.strategy != ShardStrategy::NoShard; }
  bool frees() const { return frees_params(opts_.strategy); }
  bool last_micro() const { return micro_ == num_micro_ - 1; }
  void hold(int64_t bytes);
  Tensor alloc(int64_t numel, DType dtype, bool zero);
  void bind(int s);  // the segment's current full/grad buffers into the ParamStore
  void gather(int s);
  void wait_gathered(int s);
  void release(int s);
  void bind_fresh_grad(int s);
  void reduce(int s);
  void complete_oldest();
  void drain();
  void progress();
  Tensor gather_input(int b) const;

  nn::Module& model_;
  ShardGroups& groups_;
  Device device_;
  ShardingOptions opts_;
  BucketPlan plan_;
  std::vector<SegmentState> seg_;
  std::vector<Tensor> master_, grad_shard_, wire_param_;  // per bucket
  std::vector<int> root_segments_;
  std::deque<Reduction> pending_;
  int micro_ = 0, num_micro_ = 1;
  bool trainable_ = true;
  int64_t micro_serial_ = 0;              // counts micro-batches
  std::vector<int64_t> backward_serial_;  // per segment: the micro-batch of its last backward
  int64_t bytes_now_ = 0, bytes_peak_ = 0;
};

}  // namespace rae::distributed
