// The training loop, the same for every model, objective, device and world size: an Objective
// (train/objective.h; stage 2: flow matching) names the models and computes the loss; the
// trainer builds each model through the registry, places its parameters with the sharding core
// (distributed/sharded_params.h: world size 1 is a world of one rank), and runs the step:
//
//   for each micro-batch k of this rank's share of the global batch:
//     every model's ShardedParams: begin_micro_batch(k, K)
//     objective.micro_step()             forward + backward; block hooks gather and reduce
//     every model's ShardedParams: end_micro_batch()
//   finish_gradients(); loss summed over ranks; per model the global gradient norm (clip), then
//   AdamW + EMA on the owned shards and publish(); a non-finite loss or norm skips the update
//   (train.max_bad_steps in a row abort); a finite loss above train.loss_spike_factor x the
//   running mean of the losses before it (EMA 0.99, once train.loss_spike_warmup updates are
//   done) stops the run before its update, with nothing written
//
// plus metrics.jsonl, checkpoints (train/checkpoint.h: one format for every layout) and exact
// resume. Randomness is keyed by (seed, step, global sample id), so the losses of 1, 2 or 4
// ranks agree up to float summation order, and CPU resume is bit-exact.
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "io/tensorboard.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/data_source.h"
#include "train/graph_step.h"
#include "train/objective.h"

namespace rae::train {

struct StepStats {
  int64_t step = 0;  // 1-based number of the step just done
  double loss = 0, lr = 0, grad_norm = 0, samples_per_s = 0, data_wait_s = 0;
  bool skipped = false;
  // Every metric of the objective (summed over ranks) and, with several models, per model
  // "lr.<name>" and "grad_norm.<name>"; loss, lr and grad_norm above are the first model's.
  std::map<std::string, double> metrics;
};

class Trainer {
 public:
  // `run_dir` may be empty (no files: tests). `world`: the communicator of an MPI job (its rank
  // and size; NCCL or MPI), null for one process. `objective`: null = make_objective(cfg).
  Trainer(const TrainConfig& cfg, BatchStream& data, const std::string& run_dir,
          distributed::Communicator* world = nullptr,
          std::unique_ptr<Objective> objective = nullptr);
  ~Trainer();
  // Loads the newest checkpoint that verifies, if any (collective); returns its step (0: none).
  // Rank 0 first tidies the run directory (train/run_dir.h): a run directory whose checkpoints
  // are all invalid is refused, naming each, unless restart_from_scratch.
  int64_t resume(bool restart_from_scratch = false);
  StepStats step();
  // Runs until cfg.steps, logging and checkpointing; a final checkpoint is always written.
  void run();
  std::string save_checkpoint();
  // Called by run() on every rank after each step (after its metrics are logged, before its
  // periodic checkpoint), e.g. reconstructions and evaluation of stage 1; it may run
  // collectives (every rank calls it at the same steps).
  void set_step_callback(std::function<void(const StepStats&)> fn) {
    step_callback_ = std::move(fn);
  }
  // The run's TensorBoard writer on rank 0 while run() runs (null elsewhere): for images.
  tensorboard::Writer* events() { return tb_.get(); }

  TrainedModel& model(const std::string& name = "model");
  std::vector<TrainedModel*> models();
  Objective& objective() { return *objective_; }
  const RunState& state() const { return state_; }
  const GraphStep* graph_step() const { return graph_.get(); }
  Device device() const { return device_; }
  int rank() const { return world_ ? world_->rank() : 0; }

 private:
  void log_metrics(const StepStats& s);
  void check_loss_spike(double loss) const;  // throws when the loss-spike guard trips
  void write_run_files();

  TrainConfig cfg_;
  BatchStream& data_;
  std::string run_dir_;
  distributed::Communicator* world_;
  std::unique_ptr<Objective> objective_;
  distributed::ShardGroups groups_;
  std::vector<std::unique_ptr<TrainedModel>> models_;
  RunState state_;
  Device device_;
  // train.cuda_graph (train/graph_step.h): the step replayed as a CUDA graph after one eager step.
  std::unique_ptr<GraphStep> graph_;
  bool graph_warm_ = false;
  std::ofstream metrics_;
  std::unique_ptr<tensorboard::Writer> tb_;  // event files beside metrics.jsonl (rank 0)
  std::function<void(const StepStats&)> step_callback_;
};

// The device a rank trains on: train.device, where a bare "cuda" on a CUDA communicator means
// that communicator's GPU, and under an MPI job the rank's GPU (physical local rank modulo the
// GPUs).
Device training_device(const TrainConfig& cfg, distributed::Communicator* world);

}  // namespace rae::train
