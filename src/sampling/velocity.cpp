#include "sampling/velocity.h"

#include "core/error.h"

namespace rae::sampling {

diffusion::Velocity denoiser_velocity(models::Denoiser& model, Device device, DType act_dtype) {
  auto arena = std::make_shared<nn::Arena>(device, size_t(64) << 20, act_dtype);
  models::Denoiser* m = &model;
  return [m, arena, device](const Tensor& out, const Tensor& x, double t, const Tensor& y) {
    const int64_t B = x.dim(0);
    // The release broadcasts the float32 grid value over the batch.
    Tensor tt = Tensor::full({B}, static_cast<float>(t), DType::F32).to(device);
    arena->reset();
    m->infer(*arena, out, x, tt, y);
  };
}

bool is_stage2_model(const std::string& name, const models::ModelSpec&) {
  return name == "model";
}

VelocityModel load_velocity_model(const ModelSource& src, Device device, DType act_dtype) {
  auto sm = std::make_shared<diffusion::SamplingModel>();
  if (src.kind == ModelSource::Kind::Random) {
    sm->spec = src.spec;
    sm->module = models::build_model(src.spec);
    sm->denoiser = &models::module_as<models::Denoiser>(*sm->module, "Denoiser", src.arg);
    sm->module->init(src.seed);
  } else {
    LoadedWeights w = load_weights(src);
    *sm = diffusion::sampling_model_from(w.tensors, w.metadata, w.where);
  }
  sm->module->to(device);
  models::Denoiser& d = *sm->denoiser;
  VelocityModel v;
  v.velocity = denoiser_velocity(d, device, act_dtype);
  v.grid = d.grid(), v.tokens = d.tokens(), v.channels = d.channels();
  v.num_classes = d.num_classes();
  v.has_null_class = d.has_null_class();
  v.stats = sm->stats;
  v.description = sm->module->summary() + " from " + describe(src);
  v.model = std::move(sm);
  return v;
}

}  // namespace rae::sampling
