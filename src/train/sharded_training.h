// Data-parallel training over a distributed::Communicator: the trainer's GradientSync for every
// strategy (--shard no_shard|shard_grad_op|full_shard|hybrid_shard, --dist.comm_dtype).
//
// Each parameter group of the ParamStore (one per transformer block, plus the rest) is split into
// equal contiguous shards over the shard group (its numel padded to a multiple of the group
// size). After backward, gradients are summed over ranks (all-reduce for no_shard; reduce-scatter
// into this rank's shard, then for hybrid an all-reduce across nodes). AdamW and the EMA run on
// the owned shard only (their state is sharded); the updated shards are all-gathered back into
// the full parameters the model computes with. no_shard is the same with one shard (every rank
// owns everything and runs the same update).
//
// Checkpoints are sharded: every writing rank (replica 0 of each shard) writes its own
// shard-KKKKK-of-SSSSS.safetensors in parallel; rank 0 writes state.json and a manifest with
// checksums. Resume reads the owned ranges from whichever old shards hold them, so a run can
// resume with another world size (elastic); with the same size each rank reads exactly its own
// shard (bit-exact). Checkpoints of the single-process format are read too.
//
// ZeRO-2/3 on the CPU/MPI path: under shard_grad_op and full_shard (more than one shard, MPI
// collectives) the trainer hands the model per-block hooks (nn::BlockHooks). Each transformer
// block's parameter group is then reduced per block: after the block's backward its flat gradient
// buffer is reduce-scattered asynchronously into this rank's shard and freed once that completes
// (so at most two blocks' full gradients exist at once). full_shard also keeps only the owned
// shard of each block's parameters: the block is all-gathered just before its forward (the next
// block's gather is issued first, so it overlaps this block's compute), released after it, and
// re-gathered in reverse order for backward (prefetching the previous block). Overlap is dropped
// only around blocks too large for the per-block buffer budget (plan_backward). The other groups
// (embedders, final layer) stay replicated: full parameters and gradients, gradients
// reduce-scattered after backward, optimizer state sharded. Gradient accumulation over K
// micro-batches reduce-scatters each block once per micro-batch and adds into the shard.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/sharding.h"
#include "distributed/mpi_communicator.h"
#include "nn/block_hooks.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"

namespace rae::train {

struct ShardOptions {
  distributed::ShardStrategy strategy = distributed::ShardStrategy::NoShard;
  DType comm_dtype = DType::F32;  // gradients on the wire (f32 or bf16)
};

class ShardedTraining : public GradientSync, public nn::BlockHooks {
 public:
  ShardedTraining(distributed::Communicator& world, const ShardOptions& opts,
                  const TrainConfig& cfg);
  ~ShardedTraining() override;

  int rank() const override { return world_.rank(); }
  int world_size() const override { return world_.size(); }
  void sync_gradients(nn::ParamStore& ps) override;
  double sum_scalar(double v) override;
  double grad_norm(const nn::ParamStore& ps) override;
  bool owns_optimizer() const override { return true; }
  void optimizer_step(nn::ParamStore& ps, double lr, double grad_scale, double ema_decay) override;
  int64_t optimizer_steps() const override { return adam_step_; }
  bool owns_checkpoints() const override { return true; }
  std::string save_checkpoint(const std::string& run_dir, const nn::ParamStore& ps,
                              const RunState& state, int64_t keep_last,
                              int64_t keep_every) override;
  std::optional<RunState> load_latest_checkpoint(const std::string& run_dir,
                                                 nn::ParamStore& ps) override;

  // Per-rank bytes of the sharded state (grad shards, AdamW moments, EMA) and of the full
  // parameters and gradients the model keeps, for the start-up report.
  std::string memory_report(const nn::ParamStore& ps) const;

  // ZeRO-2/3 hooks (null for no_shard, hybrid_shard, one shard or NCCL: those keep full
  // parameters and gradients and reduce after the whole backward).
  nn::BlockHooks* block_hooks(nn::ParamStore& ps, const std::vector<int>& blocks) override;
  void before_forward(int block) override;
  void after_forward(int block) override;
  void before_backward(int block) override;
  void after_backward(int block) override;
  // Parameter and gradient bytes this rank holds now / at most since the start (persistent
  // model and shard buffers, gathered blocks, gradient buffers in flight; not optimizer state).
  int64_t param_grad_bytes_now() const { return held_bytes_; }
  int64_t param_grad_bytes_peak() const { return peak_bytes_; }

 private:
  struct Group {
    std::string name;
    int64_t numel = 0, padded = 0, shard_numel = 0;
    int64_t begin = 0, end = 0;    // owned range of the group's elements
    Tensor grad_shard, m, v, ema;  // (shard_numel) F32; [0, end - begin) is meaningful
    // Block groups under the ZeRO-2/3 hooks.
    bool per_block = false;       // gradients reduced by the hooks, freed after
    bool sharded_params = false;  // full_shard: only param_shard persists
    Tensor param_shard;           // (shard_numel) owned parameters (zero tail)
    Tensor gathered, grad_full;   // (padded) while in use
    Tensor wire_in, wire_out;     // the reduction in flight
    distributed::Work gather_work, reduce_work;
    bool accumulate = false;  // the reduction in flight adds into grad_shard
    bool fresh = true;        // the next reduction starts a new step's gradient
  };
  Tensor owned_param(const nn::ParamStore& ps, size_t i) const;
  void hold(int64_t bytes);
  void start_gather(int block);
  void bind(int block);
  void use_params(int block);
  void release_params(int block);
  void finish_reduction(int block);
  void progress();
  struct BackwardPlan {
    bool keep_in_flight = true;  // the next block's reduce-scatter stays in flight
    bool prefetch = true;        // the previous block's all-gather is issued ahead
    int64_t transient = 0;       // bytes of per-block buffers held during the backward
  };
  int64_t block_bytes(int block) const;  // padded F32 bytes (0 out of range)
  BackwardPlan plan_backward(int block) const;
  int64_t planned_transient_bytes()
      const;  // MPI progresses non-blocking collectives only inside MPI calls: poke them
  void attach(const nn::ParamStore& ps);
  int shards() const { return groups_.shard_size(); }
  int shard_rank() const { return groups_.shard_rank(); }
  // One copy of each shard is written: by the ranks of replica 0.
  bool writer() const { return !groups_.replicate || groups_.replicate->rank() == 0; }
  void gather_params(nn::ParamStore& ps);
  void load_sharded(const std::string& dir, nn::ParamStore& ps, RunState* st);
  void load_single(const std::string& dir, nn::ParamStore& ps, RunState* st);
  static Tensor on_comm(distributed::Communicator& c, const Tensor& host);
  static Tensor to_host(const Tensor& t);

  distributed::Communicator& world_;
  ShardOptions opts_;
  TrainConfig cfg_;
  distributed::ShardGroups groups_;
  std::vector<Group> g_;
  bool attached_ = false;
  int64_t adam_step_ = 0;
  bool zero_ = false;                 // the block hooks are active
  nn::ParamStore* hooked_ = nullptr;  // the model's parameters (hooks rebind block groups)
  std::vector<int> block_group_;      // block index -> group index
  int64_t held_bytes_ = 0, peak_bytes_ = 0;
  int64_t budget_bytes_ = 0;  // per-block buffers (see plan_backward)
};

// A distributed training session for `rae train`: MPI world (watchdog timeout, node size), the
// start-up consistency check of the config, and the ShardedTraining hook (over NCCL when
// train.device is CUDA, else MPI).
struct DistSessionOptions {
  std::string shard = "no_shard";
  std::string comm_dtype = "fp32";  // fp32 | bf16
  double timeout_s = 300;
  int node_size = 0;
};
class DistSession {
 public:
  // Collective over all ranks; `config_text` is what must agree (the effective config).
  DistSession(const DistSessionOptions& o, const TrainConfig& cfg, const std::string& config_text);
  ~DistSession();
  ShardedTraining& sync() { return *sync_; }
  distributed::Communicator& world();
  void report_start(const nn::ParamStore& ps);  // per-rank bytes by strategy
  void finish();  // prints the measured peak and finalizes MPI (success only)

 private:
  std::unique_ptr<distributed::MpiCommunicator> world_;
  std::unique_ptr<distributed::Communicator> nccl_;  // CUDA training only
  std::unique_ptr<ShardedTraining> sync_;
};

// The newest checkpoint of a run (either format) that verifies; corrupt newer ones are skipped
// with a warning.
std::optional<std::string> latest_valid_any_checkpoint(const std::string& run_dir);
std::string verify_any_checkpoint(const std::string& dir);
// True when a checkpoint of `run_dir` is in the sharded format (then even a single-process
// `rae train` resumes through ShardedTraining instead of ignoring it).
bool has_sharded_checkpoint(const std::string& run_dir);

// `rae export`: the consolidated model (or EMA) weights of a checkpoint directory as one
// safetensors file with the dit_config metadata.
void export_checkpoint(const std::string& checkpoint_dir, bool ema, const std::string& out);

}  // namespace rae::train
