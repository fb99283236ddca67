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
