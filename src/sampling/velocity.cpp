#include "sampling/velocity.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace rae::sampling {

bool parse_random_source(const std::string& source, std::string* preset, uint64_t* seed) {
  if (source.rfind("random:", 0) != 0) return false;
  const std::string rest = source.substr(7);
  const size_t colon = rest.find(':');
  *preset = rest.substr(0, colon);
  *seed = 0;
  if (colon != std::string::npos) {
    const std::string digits = rest.substr(colon + 1);
    RAE_CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos, "'",
              source, "': bad seed (expected random:PRESET[:SEED])");
    *seed = std::stoull(digits);
  }
  return true;
}

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
  std::string preset;
  uint64_t seed = 0;
  if (parse_random_source(path, &preset, &seed)) {
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
