#include "diffusion/sampling_model.h"

#include "io/safetensors.h"
#include "models/dit.h"

namespace rae::diffusion {

SamplingModel load_sampling_model(const std::string& path) {
  safetensors::File f = safetensors::load(path);
  return sampling_model_from(f.tensors, f.metadata, path);
}

SamplingModel sampling_model_from(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata,
                                  const std::string& where) {
  SamplingModel out;
  out.metadata = metadata;
  if (auto spec = models::spec_from_metadata(metadata, where)) {
    out.spec = *spec;
  } else if (auto it = metadata.find("dit_config"); it != metadata.end()) {
    models::DiTConfig c = models::DiTConfig::from_json(it->second);  // files of earlier versions
    out.spec = {models::dit_type(c), nlohmann::json::parse(c.to_json())};
  } else {
    models::DiTConfig c = models::infer_dit_config(tensors);
    out.spec = {models::dit_type(c), nlohmann::json::parse(c.to_json())};
  }
  out.module = models::build_model(out.spec);
  out.denoiser = &models::module_as<models::Denoiser>(*out.module, "Denoiser", where);
  out.stats = LatentStats::load(tensors, metadata, where);
  std::map<std::string, Tensor> weights = tensors;
  weights.erase(kLatentMeanName);
  weights.erase(kLatentVarName);
  out.module->params().load_state_dict(weights, where);
  if (out.stats.defined()) out.stats.check(out.denoiser->tokens(), out.denoiser->channels(), where);
  return out;
}

}  // namespace rae::diffusion
