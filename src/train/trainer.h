// The stage-2 training loop: flow-matching loss on DiT^DH, exact gradient accumulation,
// global-norm clipping, AdamW, EMA, NaN/Inf guard, metrics.jsonl, checkpoints and exact resume.
// Hooks let the distributed layer extend it: a ParameterSource runs before each forward
// (e.g. gather sharded blocks), a GradientSync after the backward of all micro-batches
// (e.g. all-reduce / reduce-scatter of each block's flat gradient buffer) and reduces scalars.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "diffusion/flow.h"
#include "io/tensorboard.h"
#include "models/dit.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/data_source.h"
#include "train/optimizer.h"

namespace rae::train {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  // After all micro-batches' backward; grads hold this rank's share of the global-batch mean.
  virtual void sync_gradients(nn::ParamStore&) {}
  // Sum of a scalar over ranks (loss, squared gradient norm of shards).
  virtual double sum_scalar(double v) { return v; }
  // Sharded data parallelism (train/sharded_training.h) takes over the gradient norm, the
  // optimizer (AdamW + EMA on this rank's shard, then re-assembles the parameters) and the
  // checkpoints (every rank calls save/load).
  virtual double grad_norm(const nn::ParamStore& ps) { return global_grad_norm(ps); }
  virtual bool owns_optimizer() const { return false; }
  // Per-block hooks for the model (ZeRO-2/3 gather/release and per-block gradient reduction);
  // called once with the model's parameters (on their device) before the first step.
  virtual nn::BlockHooks* block_hooks(nn::ParamStore&) { return nullptr; }
  virtual void optimizer_step(nn::ParamStore&, double /*lr*/, double /*grad_scale*/,
                              double /*ema_decay*/) {}
  virtual int64_t optimizer_steps() const { return 0; }
  virtual bool owns_checkpoints() const { return false; }
  virtual std::string save_checkpoint(const std::string& /*run_dir*/, const nn::ParamStore&,
                                      const RunState&, int64_t /*keep_last*/,
                                      int64_t /*keep_every*/) {
    return "";
  }
  virtual std::optional<RunState> load_latest_checkpoint(const std::string& /*run_dir*/,
                                                         nn::ParamStore&) {
    return std::nullopt;
  }
};

class ParameterSource {
 public:
  virtual ~ParameterSource() = default;
  virtual void before_forward(nn::ParamStore&) {}
};

struct StepStats {
  int64_t step = 0;  // 1-based number of the step just done
  double loss = 0, lr = 0, grad_norm = 0, samples_per_s = 0, data_wait_s = 0;
  bool skipped = false;
};

class Trainer {
 public:
  // `run_dir` may be empty (no files: tests). Model shape comes from the source.
  Trainer(const TrainConfig& cfg, BatchStream& data, const std::string& run_dir,
          GradientSync* sync = nullptr, ParameterSource* params = nullptr);
  // Loads the newest checkpoint that verifies, if any; returns the step resumed from (0: none).
  int64_t resume();
  StepStats step();
  // Runs until cfg.steps, logging and checkpointing; a final checkpoint is always written.
  void run();
  std::string save_checkpoint();

  models::DiTDH& model() { return *model_; }
  Ema& ema() { return *ema_; }
  const RunState& state() const { return state_; }
  const diffusion::FlowConfig& flow() const { return flow_; }

 private:
  void log_metrics(const StepStats& s);

  TrainConfig cfg_;
  BatchStream& data_;
  std::string run_dir_;
  GradientSync default_sync_;
  ParameterSource default_params_;
  GradientSync* sync_;
  ParameterSource* param_source_;
  std::unique_ptr<models::DiTDH> model_;
  std::unique_ptr<AdamW> adam_;
  std::unique_ptr<Ema> ema_;
  diffusion::FlowConfig flow_;
  LrSchedule schedule_;
  RunState state_;
  Device device_;
  nn::Arena arena_;
  std::ofstream metrics_;
  std::unique_ptr<tensorboard::Writer> tb_;  // event files beside metrics.jsonl (rank 0)
};

}  // namespace rae::train
