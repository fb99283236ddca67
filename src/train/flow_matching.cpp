#include "train/flow_matching.h"

#include "core/error.h"
#include "ops/elementwise.h"

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

Metrics FlowMatching::micro_step(const MicroBatch& mb) {
  const Tensor& lat = mb.data.latents;  // (b, T, C) F32, host
  const int64_t B = lat.dim(0), T = model_->tokens(), C = model_->channels();
  RAE_CHECK(lat.ndim() == 3 && lat.dim(1) == T && lat.dim(2) == C, "data batch ", lat.str(),
            " does not match the model's (", B, ", ", T, ", ", C, ")");
  arena_.reset();
  // The batch on the device; everything below runs there.
  Tensor x = arena_.empty({B, T, C}, DType::F32);
  x.copy_from(lat);
  Tensor ids = arena_.empty({B}, DType::I64), labels = arena_.empty({B}, DType::I32);
  ids.copy_from(mb.data.ids);
  labels.copy_from(mb.data.labels);
  if (stats_dev_.defined()) diffusion::normalize_latents(x, stats_dev_);
  Tensor eps = arena_.empty({B, T, C}, DType::F32), target = arena_.empty({B, T, C}, DType::F32);
  Tensor t = arena_.empty({B}, DType::F32), y = arena_.empty({B}, DType::I32);
  diffusion::draw_flow_batch(flow_, static_cast<uint64_t>(mb.step), ids, labels, eps, t, y);
  Tensor xt = arena_.empty({B, T, C});  // the activation dtype: the model's input
  ops::flow_interpolate(xt, target, x, eps, t);
  Tensor pred = arena_.empty({B, T, C}, DType::F32);
  model_->forward(arena_, pred, xt, t, y);
  // This micro-batch's share of the global mean: share * its own mean.
  const double loss = mb.share * ops::mse_forward(pred, target);
  Tensor dpred = arena_.zeros({B, T, C}, DType::F32);
  ops::mse_backward(dpred, pred, target, mb.share);
  model_->backward(arena_, dpred);
  return {{"loss", loss}};
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
