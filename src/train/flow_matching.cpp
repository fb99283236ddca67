#include "train/flow_matching.h"

#include "core/error.h"
#include "ops/elementwise.h"
#include "ops/step_scalars.h"

namespace rae::train {

std::unique_ptr<Objective> make_objective(const TrainConfig&) {
  return std::make_unique<FlowMatching>();
}

std::vector<ModelRole> FlowMatching::roles(const TrainConfig& cfg, const BatchStream& data) {
  // The preset with the data's shape and the config's overrides.
  models::ModelSpec spec = models::model_preset(cfg.preset);
  spec = models::with_overrides(spec, nlohmann::json::parse(cfg.model_overrides));
  spec = models::with_overrides(spec, {{"in_channels", data.channels()},
                                       {"grid", data.grid()},
                                       {"num_classes", data.num_classes()},
                                       {"class_dropout", cfg.class_dropout}});
  diffusion::parse_time_dist(cfg.time_dist, flow_);
  const int64_t dim =
      cfg.shift_dim > 0 ? cfg.shift_dim : data.grid() * data.grid() * data.channels();
  flow_.shift = diffusion::time_shift(dim, cfg.shift_base);
  flow_.class_dropout = cfg.class_dropout;
  flow_.num_classes = data.num_classes();
  flow_.seed = static_cast<uint64_t>(cfg.seed);
  if (cfg.normalize) {
    stats_ = data.latent_stats();
    RAE_CHECK(stats_.defined(), "data.normalize = true, but ", data.describe(),
              " has no latent statistics (stats.safetensors); compute them with `rae cache` or "
              "train on raw latents with --data.normalize=false");
    stats_.check(data.grid() * data.grid(), data.channels(), data.describe());
  }
  return {ModelRole{"model", spec, OptimSettings::from_config(cfg, data.steps_per_epoch())}};
}

void FlowMatching::attach(const std::vector<TrainedModel*>& models, const StepEnv& env) {
  RAE_CHECK(models.size() == 1, "flow matching trains one model, got ", models.size());
  model_ = &models::module_as<models::Denoiser>(*models[0]->module, "Denoiser", "flow matching");
  env_ = env;
  arena_ = nn::Arena(env.device, size_t(64) << 20, env.activation_dtype);
  if (stats_.defined()) stats_dev_ = stats_.to(env.device);
}

void FlowMatching::prepare(const MicroBatch& mb) {
  const Tensor& lat = mb.data.latents;  // (b, T, C) F32, host
  const int64_t B = lat.dim(0), T = model_->tokens(), C = model_->channels();
  RAE_CHECK(lat.ndim() == 3 && lat.dim(1) == T && lat.dim(2) == C, "data batch ", lat.str(),
            " does not match the model's (", B, ", ", T, ", ", C, ")");
  arena_.reset();
  // The batch on the device; everything below runs there.
  x_ = arena_.empty({B, T, C}, DType::F32);
  x_.copy_from(lat);
  Tensor ids = arena_.empty({B}, DType::I64), labels = arena_.empty({B}, DType::I32);
  ids.copy_from(mb.data.ids);
  labels.copy_from(mb.data.labels);
  if (stats_dev_.defined()) diffusion::normalize_latents(x_, stats_dev_);
  eps_ = arena_.empty({B, T, C}, DType::F32), target_ = arena_.empty({B, T, C}, DType::F32);
  t_ = arena_.empty({B}, DType::F32), y_ = arena_.empty({B}, DType::I32);
  diffusion::draw_flow_batch(flow_, static_cast<uint64_t>(mb.step), ids, labels, eps_, t_, y_);
}

Tensor FlowMatching::forward() {
  Tensor xt = arena_.empty(x_.shape());  // the activation dtype: the model's input
  ops::flow_interpolate(xt, target_, x_, eps_, t_);
  Tensor pred = arena_.empty(x_.shape(), DType::F32);
  model_->forward(arena_, pred, xt, t_, y_);
  return pred;
}

void FlowMatching::backward(const MicroBatch& mb, const Tensor& pred) {
  Tensor dpred = arena_.zeros(pred.shape(), DType::F32);
  ops::mse_backward(dpred, pred, target_, mb.share);
  model_->backward(arena_, dpred);
}

Metrics FlowMatching::micro_step(const MicroBatch& mb) {
  prepare(mb);
  Tensor pred = forward();
  // This micro-batch's share of the global mean: share * its own mean.
  const double loss = mb.share * ops::mse_forward(pred, target_);
  backward(mb, pred);
  return {{"loss", loss}};
}

void FlowMatching::graph_prepare(const MicroBatch& mb) {
  // No label can be checked inside a captured step (ops::embedding_forward reads nothing back
  // there): check them here, on the host.
  const Tensor& lab = mb.data.labels;
  for (int64_t i = 0; i < lab.numel(); ++i) {
    const int32_t v = lab.data<int32_t>()[i];
    RAE_CHECK(v >= 0 && v < flow_.num_classes, "data batch: label ", v, " of sample ",
              mb.data.ids.data<int64_t>()[i], " is outside [0, ", flow_.num_classes, ")");
  }
  prepare(mb);
}

void FlowMatching::graph_compute(const MicroBatch& mb, const Tensor& scalars) {
  Tensor pred = forward();
  ops::mse_forward_acc(scalars, pred, target_, mb.share);  // = micro_step's loss, on the device
  backward(mb, pred);
}

void FlowMatching::artifacts(std::map<std::string, Tensor>& tensors,
                             std::map<std::string, std::string>& metadata) const {
  stats_.store(tensors, metadata);
}

nlohmann::json FlowMatching::describe() const {
  return {{"time_shift", flow_.shift},
          {"class_dropout", flow_.class_dropout},
          {"latent_normalization", stats_.defined()}};
}

}  // namespace rae::train
