// models/registry.h: building models from (type, config JSON), presets, overrides, the metadata
// round trip, and the errors that name what is wrong; the DiT config inference refuses to guess.
#include <gtest/gtest.h>

#include "models/dit.h"
#include "models/registry.h"
#include "support/util.h"

using namespace rae;

namespace {
using test::error_of;
}  // namespace

TEST(ModelRegistry, PresetsBuildTheirType) {
  models::ModelSpec s = models::model_preset("DiTDH-micro");
  EXPECT_EQ(s.type, "DiTDH");
  auto m = models::build_model(s);
  EXPECT_EQ(m->type(), "DiTDH");
  EXPECT_EQ(m->config(), s.config);  // config() rebuilds the same model
  EXPECT_EQ(m->block_groups().size(), 3u);
  auto& d = models::module_as<models::Denoiser>(*m, "Denoiser", "test");
  EXPECT_EQ(d.channels(), 768);
  auto plain = models::build_model(models::model_preset("DiT-micro"));
  EXPECT_EQ(plain->type(), "DiT");
  // Both declare the same tensors when rebuilt from what they report.
  auto again = models::build_model({m->type(), m->config()});
  EXPECT_EQ(again->params().state_dict().size(), m->params().state_dict().size());
}

TEST(ModelRegistry, OverridesAndMetadata) {
  auto s = models::with_overrides(models::model_preset("DiTDH-micro"),
                                  {{"grid", 4}, {"in_channels", 8}, {"num_classes", 5}});
  auto m = models::build_model(s);
  EXPECT_EQ(models::module_as<models::Denoiser>(*m, "Denoiser", "t").tokens(), 16);
  std::map<std::string, std::string> meta;
  models::spec_to_metadata(s, meta);
  auto back = models::spec_from_metadata(meta, "file.safetensors");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->type, s.type);
  EXPECT_EQ(back->config, s.config);
  EXPECT_FALSE(models::spec_from_metadata({}, "x").has_value());
}

TEST(ModelRegistry, ErrorsNameTheProblem) {
  std::string e = error_of([] { models::build_model({"Unet", {}}); });
  EXPECT_NE(e.find("unknown model type 'Unet'"), std::string::npos) << e;
  EXPECT_NE(e.find("DiTDH"), std::string::npos) << e;
  e = error_of([] { models::model_preset("DiTDH-XXL"); });
  EXPECT_NE(e.find("DiTDH-XXL"), std::string::npos) << e;
  e = error_of([] { models::with_overrides(models::model_preset("DiTDH-S"), {{"depth", 3}}); });
  EXPECT_NE(e.find("'depth'"), std::string::npos) << e;
  e = error_of([] {
    auto s = models::model_preset("DiTDH-micro");
    s.config["head_depth"] = 0;  // a plain DiT config under the DiTDH type
    models::build_model(s);
  });
  EXPECT_NE(e.find("head_depth"), std::string::npos) << e;
  e = error_of([] {
    auto s = models::model_preset("DiTDH-micro");
    s.config.erase("grid");
    models::build_model(s);
  });
  EXPECT_NE(e.find("'grid'"), std::string::npos) << e;
  e = error_of([] { models::spec_from_metadata({{models::kModelTypeKey, "DiT"}}, "f.st"); });
  EXPECT_NE(e.find("f.st"), std::string::npos) << e;
}

// Equal body and head widths: the names cannot tell where the head starts, so no guess.
TEST(ModelRegistry, InferDiTConfigRefusesToGuessTheHeadDepth) {
  models::DiTConfig c = models::dit_preset("DiTDH-micro");
  c.head_width = c.body_width;
  models::DiTDH m(c);
  std::string e = error_of([&] { models::infer_dit_config(m.params().state_dict()); });
  EXPECT_NE(e.find("head depth"), std::string::npos) << e;
  // Different widths: the split is read off the block widths.
  models::DiTDH m2(models::dit_preset("DiTDH-micro"));
  models::DiTConfig got = models::infer_dit_config(m2.params().state_dict());
  EXPECT_EQ(got.body_depth, 2);
  EXPECT_EQ(got.head_depth, 1);
}

// Every key of a DiT / DiT^DH config is checked before anything is built: heads = 0 was a
// SIGFPE with an empty stderr, a string where a number belongs a bare JSON exception.
TEST(ModelRegistry, EveryConfigKeyIsValidated) {
  auto error_with = [](const char* type, const char* key, const nlohmann::json& value) {
    auto s = models::model_preset(std::string(type) == "DiT" ? "DiT-micro" : "DiTDH-micro");
    s.config[key] = value;
    return error_of([&] { models::build_model(s); });
  };
  struct Case {
    const char* type;
    const char* key;
    nlohmann::json value;
    const char* says;
  };
  const Case cases[] = {
      {"DiTDH", "body_heads", 0, "key 'body_heads' is 0, must be in [1, 16]"},
      {"DiT", "body_heads", 0, "key 'body_heads' is 0"},
      {"DiTDH", "head_heads", 0, "key 'head_heads' is 0"},
      {"DiTDH", "body_heads", 3, "'body_width' (16) is not divisible by 'body_heads' (3)"},
      {"DiTDH", "head_heads", 4, "head dim head_width / head_heads = 6 must be a multiple of 4"},
      {"DiTDH", "body_depth", -1, "key 'body_depth' is -1"},
      {"DiTDH", "head_depth", -2, "key 'head_depth' is -2"},
      {"DiTDH", "grid", 0, "key 'grid' is 0"},
      {"DiTDH", "in_channels", 0, "key 'in_channels' is 0"},
      {"DiTDH", "num_classes", -1, "key 'num_classes' is -1"},
      {"DiTDH", "fourier_size", 0, "key 'fourier_size' is 0"},
      {"DiTDH", "body_width", int64_t{1} << 40, "key 'body_width' is 1099511627776"},
      {"DiTDH", "mlp_ratio", 0.0, "key 'mlp_ratio' is 0"},
      {"DiTDH", "class_dropout", 1.0, "key 'class_dropout' is 1"},
      {"DiTDH", "grid", "8", "key 'grid' must be an integer, got \"8\""},
      {"DiTDH", "grid", 8.5, "key 'grid' must be an integer, got 8.5"},
      {"DiTDH", "mlp_ratio", nullptr, "key 'mlp_ratio' must be a number, got null"},
      {"DiTDH", "name", 3, "key 'name' must be a string"},
      {"DiTDH", "depth", 3, "unknown key 'depth'"},
  };
  for (const Case& c : cases) {
    const std::string e = error_with(c.type, c.key, c.value);
    EXPECT_NE(e.find(c.says), std::string::npos) << c.key << " = " << c.value.dump() << ": " << e;
    EXPECT_NE(e.find(std::string("model type '") + c.type + "' config"), std::string::npos) << e;
  }
  // A grid and width that overflow nothing but would need terabytes: refused before allocating.
  auto s = models::model_preset("DiTDH-micro");
  s.config["body_width"] = 65536, s.config["body_heads"] = 16, s.config["body_depth"] = 1024;
  const std::string e = error_of([&] { models::build_model(s); });
  EXPECT_NE(e.find("exceed the limit of 68719476736"), std::string::npos) << e;
  // Not JSON, not an object.
  EXPECT_NE(error_of([] {
              models::DiTConfig::from_json("{", "f.safetensors");
            }).find("f.safetensors: not JSON"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { models::DiTConfig::from_json("[1]", "w"); }).find("w: expected a JSON object"),
      std::string::npos);
}

// Loading weights checks the exact shape (a transposed tensor has the same count) and refuses
// integer dtypes, naming the tensor and the source.
TEST(ModelRegistry, LoadStateDictChecksShapeAndDtype) {
  auto m = models::build_model(models::model_preset("DiTDH-micro"));
  std::map<std::string, Tensor> sd;
  for (auto& [n, t] : m->params().state_dict()) sd[n] = t.clone();
  m->params().load_state_dict(sd, "ok.safetensors");
  const std::string name = "final_layer.linear.weight";  // (768, 24)
  const Tensor w = sd[name];
  ASSERT_TRUE(w.ndim() == 2 && w.dim(0) != w.dim(1));
  sd[name] = w.view({w.dim(1), w.dim(0)});
  std::string e = error_of([&] { m->params().load_state_dict(sd, "swapped.safetensors"); });
  EXPECT_NE(e.find("swapped.safetensors: tensor '" + name + "' has shape"), std::string::npos) << e;
  sd[name] = Tensor::zeros(w.shape(), DType::I32);
  e = error_of([&] { m->params().load_state_dict(sd, "int.safetensors"); });
  EXPECT_NE(e.find("int.safetensors: tensor '" + name + "' has dtype i32"), std::string::npos) << e;
  sd[name] = w.cast(DType::BF16);  // a float dtype is cast
  m->params().load_state_dict(sd, "bf16.safetensors");
}
