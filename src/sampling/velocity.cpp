#include "sampling/velocity.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace rae::sampling {

diffusion::Velocity dit_velocity(models::DiTDH& model, Device device, DType act_dtype) {
  auto arena = std::make_shared<nn::Arena>(device, size_t(64) << 20, act_dtype);
  models::DiTDH* m = &model;
  return [m, arena, device](const Tensor& out, const Tensor& x, double t, const Tensor& y) {
    const int64_t B = x.dim(0);
    // The release broadcasts the float32 grid value over the batch.
    Tensor tt = Tensor::full({B}, static_cast<float>(t), DType::F32).to(device);
    arena->reset();
    m->forward(*arena, out, x, tt, y);
  };
}

VelocityModel load_velocity_model(const std::string& path, Device device, DType act_dtype) {
  safetensors::File f = safetensors::load(path);
  models::DiTConfig c = models::infer_dit_config(f.tensors, f.metadata);
  auto m = std::make_shared<models::DiTDH>(c);
  m->params().load_state_dict(f.tensors, path);
  m->to(device);
  VelocityModel v;
  v.velocity = dit_velocity(*m, device, act_dtype);
  v.owner = m;
  v.grid = c.grid, v.tokens = c.tokens(), v.channels = c.in_channels;
  v.num_classes = c.num_classes;
  v.description = c.name + " (" + models::format_count(m->params().num_params()) + " parameters)";
  return v;
}

}  // namespace rae::sampling
