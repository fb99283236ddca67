// Building models by name: a ModelSpec is (type, config JSON); the registry maps each type to a
// factory, so the trainer, checkpoints, export and sampling build any model from what a run or a
// file records, without knowing the model family. Presets name ready-made specs
// ("DiTDH-XL" -> {"DiTDH", {...}}).
//
// Built-in types: "DiTDH" (DiT^DH, head_depth >= 1) and "DiT" (plain LightningDiT, head_depth 0),
// both models::DiTDH (models/dit.h); "ViTDecoder", the stage-1 decoder (models/vit_decoder.h,
// presets ViT-B/L/XL, ViT-tiny, ViT-micro); "DinoDisc", the stage-1 discriminator's heads
// (models/dino_disc.h). A new family adds itself with register_model_type()
// before use (e.g. from its library's init function) and its presets with register_model_preset().
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/module.h"

namespace rae::models {

struct ModelSpec {
  std::string type;
  nlohmann::json config = nlohmann::json::object();
  std::string str() const;  // "DiTDH {...}"
};

using ModelFactory = std::function<std::unique_ptr<nn::Module>(const nlohmann::json& config)>;
// Checks a config without building anything (throws naming the key); the factory must check the
// same (a config it is given may not have been validated).
using ModelValidator = std::function<void(const nlohmann::json& config)>;
void register_model_type(const std::string& type, ModelFactory factory,
                         ModelValidator validate = nullptr);
void register_model_preset(const std::string& name, ModelSpec spec);

// How a file (export, converted checkpoint) records its model: safetensors metadata
// "model_type" and "model_config" (JSON text).
constexpr const char* kModelTypeKey = "model_type";
constexpr const char* kModelConfigKey = "model_config";
void spec_to_metadata(const ModelSpec& spec, std::map<std::string, std::string>& metadata);
// The recorded spec, or nullopt when the metadata has none; errors name `where` and the key.
std::optional<ModelSpec> spec_from_metadata(const std::map<std::string, std::string>& metadata,
                                            const std::string& where);

// Errors name the unknown type (listing the known ones) or the bad config key.
std::unique_ptr<nn::Module> build_model(const ModelSpec& spec);
// The checks of build_model without building (no allocation): the type is known and, for types
// registered with a validator (DiTDH, DiT), every config key is valid.
void check_model_spec(const ModelSpec& spec);
ModelSpec model_preset(const std::string& name);
std::vector<std::string> model_type_names();
std::vector<std::string> model_preset_names();

// The spec with `overrides` (a JSON object) merged into its config, key by key; an override of
// a key the config does not have is an error naming it.
ModelSpec with_overrides(ModelSpec spec, const nlohmann::json& overrides);

// `m` as family interface T (e.g. Denoiser), or an error naming `what` and both types.
template <class T>
T& module_as(nn::Module& m, const char* interface_name, const std::string& what) {
  T* p = dynamic_cast<T*>(&m);
  RAE_CHECK(p, what, ": model type '", m.type(), "' is not a ", interface_name);
  return *p;
}

}  // namespace rae::models
