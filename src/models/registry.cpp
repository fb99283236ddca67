#include "models/registry.h"

#include <map>
#include <mutex>

#include "models/dino_disc.h"
#include "models/dit.h"
#include "models/vit_decoder.h"

namespace rae::models {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, ModelFactory> types;
  std::map<std::string, ModelValidator> validators;
  std::map<std::string, ModelSpec> presets;
  std::vector<std::string> preset_order;
};

// The built-in families, registered on first use (no static-initialisation order to rely on).
Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    // The config of a DiT type: every key valid, head_depth matching the type.
    auto dit_config = [](const std::string& type, const nlohmann::json& j) {
      DiTConfig c = DiTConfig::from_json(j.dump(), "model type '" + type + "' config");
      const bool plain = c.head_depth == 0;
      RAE_CHECK(plain == (type == "DiT"), "model type '", type, "': head_depth ", c.head_depth,
                (plain ? " is for type 'DiT'" : " is for type 'DiTDH'"));
      return c;
    };
    for (const std::string type : {"DiTDH", "DiT"}) {
      reg->types[type] = [=](const nlohmann::json& j) -> std::unique_ptr<nn::Module> {
        return std::make_unique<DiTDH>(dit_config(type, j));
      };
      // Declaring without allocating also checks the size limit.
      reg->validators[type] = [=](const nlohmann::json& j) { DiTDH(dit_config(type, j), false); };
    }
    reg->types["DinoDisc"] = [](const nlohmann::json& j) -> std::unique_ptr<nn::Module> {
      return std::make_unique<DinoDiscHeads>(DinoDiscConfig::from_json(j.dump()));
    };
    reg->validators["DinoDisc"] = [](const nlohmann::json& j) {
      DinoDiscConfig::from_json(j.dump());
    };
    for (const std::string& name : dit_preset_names()) {
      DiTConfig c = dit_preset(name);
      reg->presets[name] = {c.head_depth > 0 ? "DiTDH" : "DiT", nlohmann::json::parse(c.to_json())};
      reg->preset_order.push_back(name);
    }
    reg->types[kVitDecoderType] = [](const nlohmann::json& j) -> std::unique_ptr<nn::Module> {
      return std::make_unique<VitDecoder>(VitDecoderConfig::from_json(j.dump()));
    };
    reg->validators[kVitDecoderType] = [](const nlohmann::json& j) {
      VitDecoderConfig::from_json(j.dump());
    };
    for (const std::string& name : decoder_preset_names()) {
      reg->presets[name] = {kVitDecoderType, nlohmann::json::parse(decoder_preset(name).to_json())};
      reg->preset_order.push_back(name);
    }
    return reg;
  }();
  return *r;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::string ModelSpec::str() const {
  return type + " " + config.dump();
}

void register_model_type(const std::string& type, ModelFactory factory, ModelValidator validate) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  RAE_CHECK(!r.types.count(type), "model type '", type, "' is registered twice");
  r.types[type] = std::move(factory);
  if (validate) r.validators[type] = std::move(validate);
}

void register_model_preset(const std::string& name, ModelSpec spec) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  RAE_CHECK(!r.presets.count(name), "model preset '", name, "' is registered twice");
  r.presets[name] = std::move(spec);
  r.preset_order.push_back(name);
}

std::vector<std::string> model_type_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (auto& [k, v] : r.types) out.push_back(k);
  return out;
}

std::vector<std::string> model_preset_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.preset_order;
}

std::unique_ptr<nn::Module> build_model(const ModelSpec& spec) {
  ModelFactory f;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.types.find(spec.type);
    if (it == r.types.end()) {
      std::vector<std::string> known;
      for (auto& [k, v] : r.types) known.push_back(k);
      RAE_THROW("unknown model type '", spec.type, "' (known: ", joined(known), ")");
    }
    f = it->second;
  }
  return f(spec.config);
}

void check_model_spec(const ModelSpec& spec) {
  ModelValidator v;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.types.count(spec.type)) {
      std::vector<std::string> known;
      for (auto& [k, f] : r.types) known.push_back(k);
      RAE_THROW("unknown model type '", spec.type, "' (known: ", joined(known), ")");
    }
    auto it = r.validators.find(spec.type);
    if (it != r.validators.end()) v = it->second;
  }
  if (v) v(spec.config);
}

ModelSpec model_preset(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.presets.find(name);
  if (it == r.presets.end())
    RAE_THROW("unknown model preset '", name, "' (known: ", joined(r.preset_order), ")");
  return it->second;
}

void spec_to_metadata(const ModelSpec& spec, std::map<std::string, std::string>& metadata) {
  metadata[kModelTypeKey] = spec.type;
  metadata[kModelConfigKey] = spec.config.dump();
}

std::optional<ModelSpec> spec_from_metadata(const std::map<std::string, std::string>& metadata,
                                            const std::string& where) {
  auto type = metadata.find(kModelTypeKey);
  auto config = metadata.find(kModelConfigKey);
  if (type == metadata.end() && config == metadata.end()) return std::nullopt;
  RAE_CHECK(type != metadata.end() && config != metadata.end(), where,
            ": metadata has only one of '", kModelTypeKey, "' and '", kModelConfigKey, "'");
  ModelSpec spec{type->second, {}};
  try {
    spec.config = nlohmann::json::parse(config->second);
  } catch (const std::exception& e) {
    RAE_THROW(where, ": metadata '", kModelConfigKey, "' is not JSON: ", e.what());
  }
  return spec;
}

ModelSpec with_overrides(ModelSpec spec, const nlohmann::json& overrides) {
  RAE_CHECK(overrides.is_object(), "model overrides must be a JSON object, got ", overrides.dump());
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    RAE_CHECK(
        spec.config.contains(it.key()), "model override '", it.key(), "': the ", spec.type,
        " config has no such key (keys: ",
        [&] {
          std::vector<std::string> k;
          for (auto c = spec.config.begin(); c != spec.config.end(); ++c) k.push_back(c.key());
          return joined(k);
        }(),
        ")");
    spec.config[it.key()] = it.value();
  }
  return spec;
}

}  // namespace rae::models
