// Parameter counts of the presets against the release (DiT^DH-XL: 839M in the paper, for
// 768 channels, a 16x16 grid and 1000 classes) and the state-dict names of the release.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "models/dit.h"

using namespace rae;

namespace {
int64_t count(const std::string& preset) {
  models::DiTConfig c = models::dit_preset(preset);
  c.in_channels = 768, c.grid = 16, c.num_classes = 1000;
  models::DiTDH m(c, /*allocate=*/false);
  return m.params().num_params();
}
}  // namespace

TEST(DiTPresets, XLParameterCount) {
  int64_t n = count("DiTDH-XL");
  std::printf("DiTDH-XL: %lld parameters\n", static_cast<long long>(n));
  EXPECT_GE(n, 838000000);
  EXPECT_LT(n, 840000000);
}

TEST(DiTPresets, SmallerPresetsGrow) {
  int64_t s = count("DiTDH-S"), b = count("DiTDH-B"), l = count("DiTDH-L");
  std::printf("DiTDH-S %lld, B %lld, L %lld\n", (long long)s, (long long)b, (long long)l);
  EXPECT_LT(s, b);
  EXPECT_LT(b, l);
  EXPECT_LT(l, count("DiTDH-XL"));
}

TEST(DiTPresets, ReleaseNamesAndShapes) {
  models::DiTConfig c = models::dit_preset("DiTDH-S");
  c.in_channels = 768, c.grid = 16, c.num_classes = 1000;
  models::DiTDH m(c, /*allocate=*/false);
  auto shape = [&](const std::string& n) {
    for (auto& p : m.params().params())
      if (p.name == n) return p.shape;
    ADD_FAILURE() << "no parameter " << n;
    return Shape{};
  };
  EXPECT_EQ(shape("x_embedder.proj.weight"), (Shape{2048, 768, 1, 1}));
  EXPECT_EQ(shape("s_embedder.proj.weight"), (Shape{384, 768, 1, 1}));
  EXPECT_EQ(shape("s_projector.weight"), (Shape{2048, 384}));
  EXPECT_EQ(shape("t_embedder.mlp.0.weight"), (Shape{384, 512}));
  EXPECT_EQ(shape("y_embedder.embedding_table.weight"), (Shape{1001, 384}));
  const auto& bn = m.params().buffer_names();
  EXPECT_EQ(bn, (std::vector<std::string>{"t_embedder.W", "pos_embed"}));
  EXPECT_EQ(shape("blocks.0.attn.qkv.weight"), (Shape{1152, 384}));
  EXPECT_EQ(shape("blocks.0.mlp.w12.weight"), (Shape{2 * 1024, 384}));
  EXPECT_EQ(shape("blocks.0.mlp.w3.weight"), (Shape{384, 1024}));
  EXPECT_EQ(shape("blocks.0.adaLN_modulation.1.weight"), (Shape{6 * 384, 384}));
  EXPECT_EQ(shape("blocks.12.attn.qkv.weight"), (Shape{3 * 2048, 2048}));
  EXPECT_EQ(shape("blocks.13.mlp.w12.weight"), (Shape{2 * 5461, 2048}));
  EXPECT_EQ(shape("final_layer.linear.weight"), (Shape{768, 2048}));
  EXPECT_EQ(shape("final_layer.adaLN_modulation.1.weight"), (Shape{4096, 2048}));
  EXPECT_EQ(shape("final_layer.norm_final.weight"), (Shape{2048}));
  // One flat group per transformer block (for sharding), plus embed and final_layer.
  EXPECT_EQ(m.params().groups().size(), static_cast<size_t>(12 + 2 + 2));
}

TEST(DiTPresets, UnknownPresetNamesIt) {
  try {
    models::dit_preset("DiTDH-XXL");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("DiTDH-XXL"), std::string::npos);
  }
}

// initialize_weights() of the release: zero adaLN and final layers, RMSNorm weights 1, label
// table N(0, 0.02), time-MLP weights N(0, 0.02), patch embedders xavier-uniform with zero bias,
// other linears U(+-1/sqrt(fan_in)); deterministic in the seed.
TEST(DiTInit, FollowsTheRelease) {
  models::DiTConfig c = models::dit_preset("DiTDH-tiny");
  c.in_channels = 32, c.grid = 8, c.num_classes = 10;
  models::DiTDH m(c), m2(c);
  m.init(5);
  m2.init(5);
  auto sd = m.params().state_dict(), sd2 = m2.params().state_dict();
  auto stats = [&](const std::string& n) {
    Tensor t = sd.at(n);
    double mean = 0, sq = 0, mx = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      double v = t.item(i);
      mean += v / t.numel(), sq += v * v / t.numel(), mx = std::max(mx, std::abs(v));
    }
    return std::array<double, 3>{mean, std::sqrt(sq), mx};
  };
  for (auto n : {"blocks.0.adaLN_modulation.1.weight", "blocks.2.adaLN_modulation.1.bias",
                 "final_layer.linear.weight", "final_layer.linear.bias",
                 "final_layer.adaLN_modulation.1.weight", "x_embedder.proj.bias"})
    EXPECT_EQ(stats(n)[2], 0.0) << n;
  EXPECT_EQ(stats("blocks.1.norm2.weight")[0], 1.0);
  EXPECT_NEAR(stats("y_embedder.embedding_table.weight")[1], 0.02, 0.002);
  EXPECT_NEAR(stats("t_embedder.mlp.0.weight")[1], 0.02, 0.002);
  EXPECT_NEAR(stats("t_embedder.W")[1], 1.0, 0.3);
  EXPECT_LE(stats("s_embedder.proj.weight")[2], std::sqrt(6.0 / (32 + 64)));
  EXPECT_GT(stats("s_embedder.proj.weight")[2], 0.9 * std::sqrt(6.0 / (32 + 64)));
  EXPECT_LE(stats("blocks.0.attn.qkv.weight")[2], 1.0 / 8.0);  // fan_in 64
  EXPECT_GT(stats("blocks.0.attn.qkv.weight")[2], 0.95 / 8.0);
  for (auto& [n, t] : sd)
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.item(i), sd2.at(n).item(i)) << n;
}

// LightningDiT-XL of the release (SwiGLU, RMSNorm, RoPE; 768 channels, patch 1): ~675M like
// DiT-XL/2, and the plain presets have no s_embedder/s_projector.
TEST(DiTPresets, PlainLightningDiT) {
  int64_t xl = count("DiT-XL");
  std::printf("DiT-XL: %lld parameters\n", static_cast<long long>(xl));
  EXPECT_GT(xl, 670000000);
  EXPECT_LT(xl, 680000000);
  models::DiTConfig c = models::dit_preset("DiT-S");
  c.in_channels = 768, c.grid = 16, c.num_classes = 1000;
  models::DiTDH m(c, false);
  for (auto& p : m.params().params()) {
    EXPECT_EQ(p.name.find("s_embedder"), std::string::npos);
    EXPECT_EQ(p.name.find("s_projector"), std::string::npos);
  }
  EXPECT_EQ(m.params().find("x_embedder.proj.weight") >= 0, true);
  EXPECT_EQ(m.params().params()[m.params().find("final_layer.linear.weight")].shape,
            (Shape{768, 384}));
}
