// Inference without saved activations (Denoiser::infer, VitDecoder::infer): the output is the
// training forward's, bit for bit, on the CPU; the arena holds less (each block's scratch is
// rewound after the block); a backward after an inference pass is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "models/dit.h"
#include "models/registry.h"
#include "models/vit_decoder.h"
#include "support/util.h"

using namespace rae;

namespace {

// Small chunks, so the capacity an arena grows to tracks what a pass keeps.
constexpr size_t kChunk = size_t(16) << 10;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

void check_denoiser(const std::string& preset) {
  SCOPED_TRACE(preset);
  auto spec = models::with_overrides(models::model_preset(preset),
                                     {{"grid", 4}, {"in_channels", 8}, {"num_classes", 5}});
  auto m = models::build_model(spec);
  auto& d = models::module_as<models::Denoiser>(*m, "Denoiser", preset);
  m->init(3);
  for (auto& g : m->params().groups())  // non-zero adaLN and output layers
    Tensor(g.data).copy_from(test::randn({g.numel}, 11, 0.05));
  const int64_t B = 3, T = d.tokens(), C = d.channels();
  Tensor x = test::randn({B, T, C}, 1), t = test::rand_uniform({B}, 2, 0, 1);
  Tensor y = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b) y.data<int32_t>()[b] = static_cast<int32_t>(b * 2);
  nn::Arena train(Device::cpu(), kChunk), infer(Device::cpu(), kChunk);
  Tensor a = Tensor::empty({B, T, C}), b = Tensor::empty({B, T, C});
  d.forward(train, a, x, t, y);
  d.infer(infer, b, x, t, y);
  EXPECT_TRUE(same_bits(a, b)) << "max |diff| " << test::max_abs_diff(a, b);
  EXPECT_LT(infer.capacity_bytes(), train.capacity_bytes());
  // A second inference on the rewound arena needs no more memory and gives the same bits.
  const size_t cap = infer.capacity_bytes();
  infer.reset();
  d.infer(infer, b, x, t, y);
  EXPECT_TRUE(same_bits(a, b));
  EXPECT_EQ(infer.capacity_bytes(), cap);
  std::string e = test::error_of([&] { d.backward(infer, a); });
  EXPECT_NE(e.find("not a training forward"), std::string::npos) << e;
}

}  // namespace

TEST(Inference, DenoisersMatchTheTrainingForwardBitForBit) {
  for (const char* p : {"DiTDH-micro", "DiT-micro", "DiTDH-tiny-deep"}) check_denoiser(p);
}

TEST(Inference, DecoderMatchesTheTrainingForwardBitForBit) {
  for (const char* p : {"ViT-micro", "ViT-tiny"}) {
    SCOPED_TRACE(p);
    auto spec = models::model_preset(p);
    if (std::string(p) == "ViT-tiny") spec = models::with_overrides(spec, {{"grid", 4}});
    auto m = models::build_model(spec);
    auto& dec = models::module_as<models::VitDecoder>(*m, "ViTDecoder", p);
    m->init(5);
    const int64_t B = 2, S = dec.image_size();
    Tensor z = test::randn({B, dec.tokens(), dec.latent_channels()}, 4);
    nn::Arena train(Device::cpu(), kChunk), infer(Device::cpu(), kChunk);
    Tensor a = Tensor::empty({B, 3, S, S}), b = Tensor::empty({B, 3, S, S});
    dec.forward(train, a, z);
    dec.infer(infer, b, z);
    EXPECT_TRUE(same_bits(a, b)) << "max |diff| " << test::max_abs_diff(a, b);
    EXPECT_LT(infer.capacity_bytes(), train.capacity_bytes());
    std::string e = test::error_of([&] { dec.backward(infer, a); });
    EXPECT_NE(e.find("not a training forward"), std::string::npos) << e;
  }
}
