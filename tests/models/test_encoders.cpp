// Encoder loader and forward: the tiny-random preset, batch independence, error messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/vit_encoder.h"
#include "support/util.h"

using namespace rae;
using namespace rae::models;

TEST(Encoders, TinyRandomPresetShapesAndDeterminism) {
  VitEncoder a = VitEncoder::load("tiny-random"), b = VitEncoder::load("tiny-random");
  EXPECT_EQ(a.config().grid(), 16);
  EXPECT_EQ(a.config().tokens(), 256);
  Tensor x = test::randn({2, 3, 224, 224}, 11);
  Tensor fa = a.forward(x), fb = b.forward(x);
  EXPECT_EQ(fa.shape(), Shape({2, 256, 64}));
  EXPECT_EQ(test::max_abs_diff(fa, fb), 0.0);
  // Final LN without affine: every token has mean 0 and variance ~1 over channels.
  for (int64_t t = 0; t < 4; ++t) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < 64; ++c) m += fa.item(t * 64 + c);
    m /= 64;
    for (int64_t c = 0; c < 64; ++c) v += (fa.item(t * 64 + c) - m) * (fa.item(t * 64 + c) - m);
    EXPECT_NEAR(m, 0.0, 1e-4);
    EXPECT_NEAR(v / 64, 1.0, 1e-3);
  }
}

TEST(Encoders, BatchElementsAreIndependent) {
  VitEncoder e = VitEncoder::load("tiny-random");
  Tensor x = test::randn({3, 3, 224, 224}, 12);
  Tensor all = e.forward(x);
  for (int64_t b = 0; b < 3; ++b) {
    Tensor one = e.forward(x.narrow(0, b, 1).clone());
    // Same arithmetic per row; only GEMM blocking may differ with the batch size.
    EXPECT_LT(test::max_abs_diff(one.select(0, 0), all.select(0, b)), 1e-4);
  }
}

TEST(Encoders, ErrorsNameTheProblem) {
  std::string dir = test::make_temp_dir("enc");
  auto expect_error = [&](const std::string& needle) {
    try {
      VitEncoder::load(dir);
      FAIL() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("model.safetensors");
  std::filesystem::copy_file(test::golden_path("encoders/mae-tiny/model.safetensors"),
                             dir + "/model.safetensors");
  std::ofstream(dir + "/config.json") << R"({"model_type": "bert"})";
  expect_error("model_type 'bert'");
  std::filesystem::copy_file(test::golden_path("encoders/dinov2-reg-tiny/config.json"),
                             dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  expect_error("missing tensor 'embeddings.register_tokens'");  // MAE weights under a DINOv2 config
  try {
    VitEncoder::load("no-such-encoder");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-encoder"), std::string::npos);
  }
}

// Every size of an encoder's config.json is range-checked, naming the key (heads = 0 divided by
// zero; a string where a number belongs was a bare JSON exception).
TEST(Encoders, ConfigSizesAreValidated) {
  std::string dir = test::make_temp_dir("enc_config");
  std::filesystem::copy_file(test::golden_path("encoders/dinov2-reg-tiny/model.safetensors"),
                             dir + "/model.safetensors");
  std::ifstream in(test::golden_path("encoders/dinov2-reg-tiny/config.json"));
  const nlohmann::json good = nlohmann::json::parse(in);
  const std::pair<const char*, nlohmann::json> cases[] = {
      {"num_attention_heads", 0}, {"num_attention_heads", 3}, {"hidden_size", 0},
      {"num_hidden_layers", -1},  {"patch_size", 0},          {"image_size", 2},
      {"layer_norm_eps", 0.0},    {"mlp_ratio", -1.0},        {"num_register_tokens", -4},
      {"patch_size", "4"}};
  for (const auto& [key, value] : cases) {
    nlohmann::json j = good;
    j[key] = value;
    std::ofstream(dir + "/config.json") << j.dump();
    const std::string e = test::error_of([&] { VitEncoder::load(dir); });
    EXPECT_NE(e.find(dir + "/config.json: key '" + key + "'"), std::string::npos)
        << key << " = " << value.dump() << ": " << e;
  }
}
