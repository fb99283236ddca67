// Loading encoders from Hugging Face model directories (config.json + model.safetensors) and the
// "tiny-random" preset.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "models/vit_encoder.h"

namespace rae::models {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream f(path);
  RAE_CHECK(f.good(), "cannot open ", path);
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    RAE_THROW("invalid JSON in ", path, ": ", e.what());
  }
}

template <typename T>
T req(const json& j, const char* key, const std::string& where) {
  RAE_CHECK(j.contains(key) && !j[key].is_null(), where, ": missing key '", key, "'");
  try {
    return j[key].get<T>();
  } catch (const std::exception&) {
    RAE_THROW(where, ": key '", key, "' has the wrong type");
  }
}

template <typename T>
T opt(const json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const std::exception&) {
    RAE_THROW(where, ": key '", key, "' has the wrong type (", j[key].dump(), ")");
  }
}

// Ranges of the sizes of config.json (no division by zero, no overflow, no huge allocation
// later); errors name the key.
void check_config(const VitEncoderConfig& c, const std::string& where) {
  auto in_range = [&](const char* key, int64_t v, int64_t lo, int64_t hi) {
    RAE_CHECK(v >= lo && v <= hi, where, ": key '", key, "' is ", v, ", must be in [", lo, ", ", hi,
              "]");
  };
  in_range("hidden_size", c.hidden, 1, 1 << 16);
  in_range("num_hidden_layers", c.layers, 1, 1024);
  in_range("num_attention_heads", c.heads, 1, c.hidden);
  RAE_CHECK(c.hidden % c.heads == 0, where, ": key 'num_attention_heads' (", c.heads,
            ") does not divide 'hidden_size' (", c.hidden, ")");
  in_range("intermediate_size (or mlp_ratio x hidden_size)", c.mlp_hidden, 1, 1 << 18);
  in_range("patch_size", c.patch, 1, 1024);
  in_range("image_size", c.config_image_size, c.patch, 1 << 14);
  in_range("num_register_tokens", c.num_registers, 0, 1024);
  RAE_CHECK(std::isfinite(c.ln_eps) && c.ln_eps > 0, where, ": key 'layer_norm_eps' is ", c.ln_eps,
            ", must be a positive number");
}

ops::GeluKind gelu_of(const std::string& act, const std::string& where) {
  if (act == "gelu") return ops::GeluKind::Exact;
  if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast")
    return ops::GeluKind::Tanh;
  RAE_THROW(where, ": unsupported hidden_act '", act, "' (gelu or gelu_pytorch_tanh)");
}

// Parses config.json into our config; `prefix_hint` gets the parameter-name prefix for wrappers.
VitEncoderConfig parse_config(const json& root, const std::string& where) {
  json j = root;
  std::string type = opt<std::string>(j, "model_type", "", where);
  if (type == "siglip") {  // the full SigLIP model: its vision tower
    RAE_CHECK(j.contains("vision_config"), where, ": siglip config without vision_config");
    j = j["vision_config"];
    type = "siglip_vision_model";
  }
  VitEncoderConfig c;
  if (type == "dinov2_with_registers" || type == "dinov2") {
    c.family = EncoderFamily::Dinov2;
    RAE_CHECK(!opt<bool>(j, "use_swiglu_ffn", false, where), where,
              ": SwiGLU DINOv2 (giant) is not supported");
    c.num_registers = type == "dinov2" ? 0 : opt<int64_t>(j, "num_register_tokens", 4, where);
    c.config_image_size = opt<int64_t>(j, "image_size", 518, where);
    c.patch = opt<int64_t>(j, "patch_size", 14, where);
    c.hidden = req<int64_t>(j, "hidden_size", where);
    const double mlp_ratio = opt<double>(j, "mlp_ratio", 4.0, where);
    RAE_CHECK(std::isfinite(mlp_ratio) && mlp_ratio > 0 && mlp_ratio <= 64, where,
              ": key 'mlp_ratio' is ", mlp_ratio, ", must be in (0, 64]");
    // (an out-of-range hidden_size is reported by check_config; no overflow on the way)
    c.mlp_hidden =
        static_cast<int64_t>(static_cast<double>(std::min<int64_t>(c.hidden, 1 << 16)) * mlp_ratio);
    c.ln_eps = opt<double>(j, "layer_norm_eps", 1e-6, where);
    c.input_size = 224;
  } else if (type == "siglip_vision_model") {
    c.family = EncoderFamily::Siglip;
    c.config_image_size = opt<int64_t>(j, "image_size", 224, where);
    c.patch = opt<int64_t>(j, "patch_size", 16, where);
    c.hidden = req<int64_t>(j, "hidden_size", where);
    c.mlp_hidden = req<int64_t>(j, "intermediate_size", where);
    c.ln_eps = opt<double>(j, "layer_norm_eps", 1e-6, where);
    c.input_size = 256;
    c.mean = {0.5f, 0.5f, 0.5f};
    c.std = {0.5f, 0.5f, 0.5f};
  } else if (type == "vit_mae") {
    c.family = EncoderFamily::Mae;
    c.config_image_size = opt<int64_t>(j, "image_size", 224, where);
    c.patch = opt<int64_t>(j, "patch_size", 16, where);
    c.hidden = req<int64_t>(j, "hidden_size", where);
    c.mlp_hidden = req<int64_t>(j, "intermediate_size", where);
    c.ln_eps = opt<double>(j, "layer_norm_eps", 1e-12, where);
    c.input_size = 256;
  } else {
    RAE_THROW(where, ": unsupported model_type '", type,
              "' (dinov2_with_registers, dinov2, siglip, siglip_vision_model, vit_mae)");
  }
  c.layers = req<int64_t>(j, "num_hidden_layers", where);
  c.heads = req<int64_t>(j, "num_attention_heads", where);
  c.gelu = gelu_of(opt<std::string>(j, "hidden_act", "gelu", where), where);
  RAE_CHECK(opt<int64_t>(j, "num_channels", 3, where) == 3, where,
            ": only 3-channel encoders are supported");
  RAE_CHECK(opt<bool>(j, "qkv_bias", true, where), where, ": qkv_bias=false is not supported");
  check_config(c, where);
  return c;
}

std::string find_prefix(const std::vector<std::string>& names, EncoderFamily fam,
                        const std::string& where) {
  const std::string suffix = fam == EncoderFamily::Siglip
                                 ? "embeddings.patch_embedding.weight"
                                 : "embeddings.patch_embeddings.projection.weight";
  std::string found;
  int hits = 0;
  for (const auto& n : names) {
    if (n.size() >= suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      // SigLIP: the vision tower's, not a text tower's.
      std::string pre = n.substr(0, n.size() - suffix.size());
      if (pre.find("text") != std::string::npos) continue;
      found = pre;
      ++hits;
    }
  }
  RAE_CHECK(hits == 1, where, ": expected one tensor named '*", suffix, "', found ", hits);
  return found;
}

// DINOv2-with-registers-shaped models with weights from the counter RNG, under HF names so they go
// through the same loader as real checkpoints: "tiny-random" (width 64, 2 layers) for tests and
// the demo, and "random-dinov2-s|b|l" (the real shapes) for benchmarks.
bool random_preset_shape(const std::string& name, int64_t* hidden, int64_t* layers,
                         int64_t* heads) {
  if (name == "tiny-random")
    *hidden = 64, *layers = 2, *heads = 4;
  else if (name == "random-dinov2-s")
    *hidden = 384, *layers = 12, *heads = 6;
  else if (name == "random-dinov2-b")
    *hidden = 768, *layers = 12, *heads = 12;
  else if (name == "random-dinov2-l")
    *hidden = 1024, *layers = 24, *heads = 16;
  else
    return false;
  return true;
}

VitEncoder random_preset(const std::string& name, const EncoderLoadOptions& opts) {
  VitEncoderConfig c;
  c.family = EncoderFamily::Dinov2;
  RAE_CHECK(random_preset_shape(name, &c.hidden, &c.layers, &c.heads), "unknown preset ", name);
  c.mlp_hidden = 4 * c.hidden;
  c.patch = 14;
  c.config_image_size = 518;  // a 37x37 position grid, interpolated like the real models'
  c.num_registers = 4;
  c.ln_eps = 1e-6;
  c.gelu = ops::GeluKind::Exact;
  c.input_size = opts.input_size > 0 ? opts.input_size : 224;
  const int64_t C = c.hidden, M = c.mlp_hidden, p = c.patch, G = c.config_image_size / p;
  std::map<std::string, Tensor> m;
  uint64_t id = 0;
  auto normal = [&](const std::string& n, const Shape& shape, double std) {
    Tensor t = Tensor::empty(shape);
    rng::Key key{0, rng::Purpose::Init, 0, id++};
    for (int64_t i = 0; i < t.numel(); ++i)
      t.data<float>()[i] = static_cast<float>(std * rng::normal_at(key, i));
    m[n] = t;
  };
  auto fill = [&](const std::string& n, const Shape& shape, double v) {
    m[n] = Tensor::full(shape, v);
  };
  normal("embeddings.patch_embeddings.projection.weight", {C, 3, p, p},
         1.0 / std::sqrt(3.0 * p * p));
  fill("embeddings.patch_embeddings.projection.bias", {C}, 0.0);
  normal("embeddings.cls_token", {1, 1, C}, 0.02);
  normal("embeddings.register_tokens", {1, 4, C}, 0.02);
  normal("embeddings.position_embeddings", {1, 1 + G * G, C}, 0.02);
  for (int64_t l = 0; l < c.layers; ++l) {
    std::string lp = "encoder.layer." + std::to_string(l) + ".";
    for (const char* n : {"norm1", "norm2"}) {
      fill(lp + n + ".weight", {C}, 1.0);
      fill(lp + n + ".bias", {C}, 0.0);
    }
    for (const char* n : {"query", "key", "value"}) {
      normal(lp + "attention.attention." + n + ".weight", {C, C}, 0.02);
      fill(lp + "attention.attention." + n + ".bias", {C}, 0.0);
    }
    normal(lp + "attention.output.dense.weight", {C, C}, 0.02);
    fill(lp + "attention.output.dense.bias", {C}, 0.0);
    normal(lp + "mlp.fc1.weight", {M, C}, 0.02);
    fill(lp + "mlp.fc1.bias", {M}, 0.0);
    normal(lp + "mlp.fc2.weight", {C, M}, 0.02);
    fill(lp + "mlp.fc2.bias", {C}, 0.0);
    fill(lp + "layer_scale1.lambda1", {C}, 1.0);
    fill(lp + "layer_scale2.lambda1", {C}, 1.0);
  }
  return VitEncoder::from_hf_tensors(c, m, "", opts.device);
}

}  // namespace

VitEncoder VitEncoder::load(const std::string& source, const EncoderLoadOptions& opts) {
  int64_t h, l, n;
  if (random_preset_shape(source, &h, &l, &n)) {
    VitEncoder e = random_preset(source, opts);
    e.id_ = source + "-" + e.id_;
    e.weights_source_ = "preset:" + source;
    return e;
  }
  RAE_CHECK(fs::is_directory(source), "encoder '", source,
            "' is neither a preset (tiny-random, random-dinov2-s|b|l) nor a model directory "
            "(config.json + model.safetensors)");
  const std::string cfg_path = (fs::path(source) / "config.json").string();
  const std::string st_path = (fs::path(source) / "model.safetensors").string();
  RAE_CHECK(fs::exists(st_path), "encoder directory ", source, " has no model.safetensors");
  VitEncoderConfig c = parse_config(read_json(cfg_path), cfg_path);
  if (opts.input_size > 0) c.input_size = opts.input_size;
  const std::string pp = (fs::path(source) / "preprocessor_config.json").string();
  if (fs::exists(pp)) {  // the image processor's own mean/std, as RAE reads them
    json j = read_json(pp);
    if (j.contains("image_mean") && j.contains("image_std")) {
      auto mean = j["image_mean"].get<std::vector<float>>(),
           stdv = j["image_std"].get<std::vector<float>>();
      RAE_CHECK(mean.size() == 3 && stdv.size() == 3, pp, ": image_mean/image_std need 3 values");
      c.mean = {mean[0], mean[1], mean[2]};
      c.std = {stdv[0], stdv[1], stdv[2]};
    }
  }
  safetensors::File f = safetensors::load(st_path);
  std::string prefix = find_prefix(f.names, c.family, st_path);
  VitEncoder e;
  try {
    e = from_hf_tensors(c, f.tensors, prefix, opts.device);
  } catch (const Error& err) {
    RAE_THROW(st_path, ": ", err.what());
  }
  e.weights_source_ = st_path;
  return e;
}

}  // namespace rae::models
