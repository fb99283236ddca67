// Stage-2 objective: flow matching of the RAE release (diffusion/flow.h) on one models::Denoiser
// ("model"). Per micro-batch, on the training device: the latents are normalised with the data's
// statistics (data.normalize, diffusion/latent_norm.h), noise, times and label dropout are drawn
// from the counter RNG (diffusion::draw_flow_batch, a CUDA kernel on the GPU with the CPU's
// values), x_t and the target come from ops::flow_interpolate, and the loss is the MSE of the
// predicted velocity, mean over all elements, weighted by the micro-batch's share. With the
// zero-initialised output layer the first loss is mean((eps - z)^2), about 2 for normalised
// latents (tested). The model comes from model.preset with model.overrides; its config's keys
// in_channels, grid, num_classes and class_dropout are set from the data and the config.
#pragma once
#include <memory>

#include "diffusion/flow.h"
#include "diffusion/latent_norm.h"
#include "models/denoiser.h"
#include "nn/arena.h"
#include "train/objective.h"

namespace rae::train {

class FlowMatching : public Objective {
 public:
  std::string name() const override { return "flow_matching"; }
  std::vector<ModelRole> roles(const TrainConfig& cfg, const BatchStream& data) override;
  void attach(const std::vector<TrainedModel*>& models, const StepEnv& env) override;
  Metrics micro_step(const MicroBatch& mb) override;
  bool supports_graph() const override { return true; }
  void graph_prepare(const MicroBatch& mb) override;
  void graph_compute(const MicroBatch& mb, const Tensor& scalars) override;
  void artifacts(std::map<std::string, Tensor>& tensors,
                 std::map<std::string, std::string>& metadata) const override;
  nlohmann::json describe() const override;

  const diffusion::FlowConfig& flow() const { return flow_; }
  const diffusion::LatentStats& stats() const { return stats_; }

 private:
  diffusion::FlowConfig flow_;
  diffusion::LatentStats stats_, stats_dev_;  // host / training device; undefined: no normalisation
  models::Denoiser* model_ = nullptr;
  StepEnv env_;
  nn::Arena arena_;
  // Between prepare() and compute(): the batch and its draws, in the arena.
  Tensor x_, eps_, target_, t_, y_;
  // prepare: upload, normalise, draw; compute: interpolate, forward, loss gradient, backward.
  // The loss itself is taken between forward and backward (host value or device scalar).
  void prepare(const MicroBatch& mb);
  Tensor forward();  // the prediction
  void backward(const MicroBatch& mb, const Tensor& pred);
};

}  // namespace rae::train
