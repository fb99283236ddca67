#include "diffusion/sampling_model.h"

#include "core/error.h"
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
  std::string from;  // where the config came from, for errors
  if (auto spec = models::spec_from_metadata(metadata, where)) {
    out.spec = *spec;
    from = where + ": metadata '" + models::kModelConfigKey + "'";
  } else if (auto it = metadata.find("dit_config"); it != metadata.end()) {
    from = where + ": metadata 'dit_config'";  // files of earlier versions
    models::DiTConfig c = models::DiTConfig::from_json(it->second, from);
    out.spec = {models::dit_type(c), nlohmann::json::parse(c.to_json())};
  } else {
    models::DiTConfig c = models::infer_dit_config(tensors);
    from = where + ": the DiT config inferred from its tensors";
    c.validate(from);
    out.spec = {models::dit_type(c), nlohmann::json::parse(c.to_json())};
  }
  try {
    out.module = models::build_model(out.spec);
  } catch (const Error& e) {
    RAE_THROW(from, ": ", e.what());
  }
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
