// What a training run optimises: an Objective names the models it trains (each with its own
// optimizer) and computes, per micro-batch, their losses and gradients. The trainer
// (train/trainer.h) owns the models, their sharding, optimizers, EMA, checkpoints and the step
// protocol; the objective owns only the math of the loss.
//
// One model (stage 2): FlowMatching (train/flow_matching.h) trains a models::Denoiser. Several
// models (stage 1: a generator and a discriminator): roles() returns both, each with its
// OptimSettings; micro_step() runs them in whatever order the loss needs (e.g. the generator's
// loss through the discriminator, then the discriminator's loss on detached outputs). Every
// model's ShardedParams has begin_micro_batch() called before micro_step() and end_micro_batch()
// after it; a model's forward/backward inside micro_step() fires its block hooks as usual.
// A model run only for its input gradients (the discriminator inside the generator's loss) is
// frozen around that pass with params->set_trainable(false); a trainable model runs one backward
// per micro-batch (sum its losses first). Gradients of a model that a micro-step does not
// differentiate stay zero and are reduced (summed) like any other
// (tests/train/test_trainer.cpp: SeveralModelsWithTheirOwnOptimizers,
// FrozenModelGetsNoParameterGradients).
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "distributed/sharded_params.h"
#include "models/registry.h"
#include "nn/module.h"
#include "train/config.h"
#include "train/data_source.h"
#include "train/optimizer.h"

namespace rae::train {

// A model the objective asks for: its name in checkpoints and logs, how to build it, how to
// optimise it.
struct ModelRole {
  std::string name;
  models::ModelSpec spec;
  OptimSettings optim;
  // The first optimizer step that updates this model (0: from the start). Before it the model's
  // AdamW update and EMA are skipped (its moments and step count stay untouched), and its
  // learning-rate schedule counts from it: the release's discriminator, whose optimizer and
  // scheduler step only once its updates begin (epoch E1).
  int64_t first_step = 0;
};

// A model being trained: the module, where its parameters live (the sharding core, every
// strategy and world size 1 alike) and its optimizer (AdamW + EMA on the owned shards).
struct TrainedModel {
  std::string name;
  models::ModelSpec spec;
  std::unique_ptr<nn::Module> module;
  std::unique_ptr<distributed::ShardedParams> params;
  std::unique_ptr<AdamW> optimizer;
  int64_t first_step = 0;  // ModelRole::first_step
  // The learning rate of optimizer step `step` (0-based, the run's count): the schedule at
  // step - first_step; 0 before first_step.
  double lr_at(int64_t step) const {
    return step < first_step ? 0.0 : optimizer->settings().schedule.lr_at(step - first_step);
  }
};

// Where the step runs: every tensor a micro-step makes lives on `device`; activations of the
// models are `activation_dtype` (BF16 under train.precision = bf16).
struct StepEnv {
  Device device;
  DType activation_dtype = DType::F32;
  int rank = 0, world_size = 1;
  // The training communicator (null: one process), for objectives whose loss needs a value of
  // the whole global batch (stage 1's adaptive GAN weight).
  distributed::Communicator* comm = nullptr;
};

// One micro-batch of this rank: the host tensors of the data stream (latents (b, T, C) F32,
// labels (b) I32, global sample ids (b) I64), the 0-based optimizer step (the key of every
// random draw) and its share of the global batch (b / global batch).
struct MicroBatch {
  DataBatch data;
  int64_t step = 0;
  double share = 0;
};

// Scalars of a step ("loss", ...), each already weighted by the micro-batch's share: the sums
// over micro-batches and ranks are the step's values.
using Metrics = std::map<std::string, double>;

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // The models to train, for this config and data (shapes, classes, statistics).
  virtual std::vector<ModelRole> roles(const TrainConfig& cfg, const BatchStream& data) = 0;
  // The built, placed models (in roles() order) before the first step.
  virtual void attach(const std::vector<TrainedModel*>& models, const StepEnv& env) = 0;
  // Forward and backward of every model for one micro-batch; parameter gradients accumulate
  // (scaled by mb.share), returns the weighted metrics.
  virtual Metrics micro_step(const MicroBatch& mb) = 0;
  // The micro-step in two parts for train.cuda_graph (train/graph_step.h). graph_prepare() runs
  // eagerly before every step: it uploads the batch and draws the step's randomness (whatever
  // depends on host values) into tensors at the same addresses each step. graph_compute() is
  // captured once as a CUDA graph and replayed: device work only (no value read back, no host
  // value that changes between steps), and it adds the share-weighted loss into
  // scalars[ops::kLoss] (ops/step_scalars.h). The two together do what micro_step() does.
  // Objectives that cannot split leave supports_graph() false (train.cuda_graph is refused).
  virtual bool supports_graph() const { return false; }
  virtual void graph_prepare(const MicroBatch& mb) {}
  virtual void graph_compute(const MicroBatch& mb, const Tensor& scalars) {}
  // Tensors and metadata that belong with the weights (e.g. the latent statistics sampling
  // needs): stored in every checkpoint and every export.
  virtual void artifacts(std::map<std::string, Tensor>& tensors,
                         std::map<std::string, std::string>& metadata) const {}
  // Resolved constants for run.json and the start-up log (e.g. the time shift).
  virtual nlohmann::json describe() const { return nlohmann::json::object(); }
  // The metric the loss-spike guard watches (train.loss_spike_factor): one whose scale does not
  // change by design during the run (stage 1's total loss jumps when LPIPS and the GAN term
  // start, so it names its L1 term).
  virtual std::string guard_metric() const { return "loss"; }
};

// The objective of a config (stage 2: flow matching).
std::unique_ptr<Objective> make_objective(const TrainConfig& cfg);

}  // namespace rae::train
