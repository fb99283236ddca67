#include "diffusion/sampling_model.h"

#include "core/error.h"
#include "io/safetensors.h"
#include "models/dit.h"

namespace rae::diffusion {

SamplingModel load_sampling_model(const std::string& path) {
  safetensors::File f = safetensors::load(path);
  SamplingModel out;
  out.metadata = f.metadata;
  std::string from;  // where the config came from, for errors
  if (auto spec = models::spec_from_metadata(f.metadata, path)) {
    out.spec = *spec;
    from = path + ": metadata '" + models::kModelConfigKey + "'";
  } else if (auto it = f.metadata.find("dit_config"); it != f.metadata.end()) {
    from = path + ": metadata 'dit_config'";  // files of earlier versions
    models::DiTConfig c = models::DiTConfig::from_json(it->second, from);
    out.spec = {models::dit_type(c), nlohmann::json::parse(c.to_json())};
  } else {
    models::DiTConfig c = models::infer_dit_config(f.tensors);
    from = path + ": the DiT config inferred from its tensors";
    c.validate(from);
    out.spec = {models::dit_type(c), nlohmann::json::parse(c.to_json())};
  }
  try {
    out.module = models::build_model(out.spec);
  } catch (const Error& e) {
    RAE_THROW(from, ": ", e.what());
  }
  out.denoiser = &models::module_as<models::Denoiser>(*out.module, "Denoiser", path);
  out.stats = LatentStats::load(f.tensors, f.metadata, path);
  std::map<std::string, Tensor> weights = f.tensors;
  weights.erase(kLatentMeanName);
  weights.erase(kLatentVarName);
  out.module->params().load_state_dict(weights, path);
  if (out.stats.defined()) out.stats.check(out.denoiser->tokens(), out.denoiser->channels(), path);
  return out;
}

}  // namespace rae::diffusion
