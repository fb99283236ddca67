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
  std::shared_ptr<models::DiTDH> m;
  if (path.rfind("random:", 0) == 0) {
    // random:PRESET[:SEED]: the preset's shapes with its initialisation (benchmarks, smoke tests).
    std::string rest = path.substr(7), preset = rest;
    uint64_t seed = 0;
    if (auto c = rest.find(':'); c != std::string::npos) {
      preset = rest.substr(0, c);
      try {
        seed = std::stoull(rest.substr(c + 1));
      } catch (const std::exception&) {
        RAE_THROW("model '", path, "': bad seed (expected random:PRESET[:SEED])");
      }
    }
    m = std::make_shared<models::DiTDH>(models::dit_preset(preset));
    m->init(seed);
  } else {
    safetensors::File f = safetensors::load(path);
    m = std::make_shared<models::DiTDH>(models::infer_dit_config(f.tensors, f.metadata));
    m->params().load_state_dict(f.tensors, path);
  }
  const models::DiTConfig& c = m->config();
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
