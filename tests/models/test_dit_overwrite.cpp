// The DiT block's backward with fresh gradient buffers written by GradMode::Overwrite
// (ops/grad_mode.h, nn/dit_block.cpp) against the zero-fill + Accumulate path
// (RAE_GRAD_OVERWRITE=0 / set_grad_overwrite(false)): on the CPU every parameter gradient and the
// input gradient are bit-identical, for DiT^DH (per-sample body, per-token head conditioning)
// and plain LightningDiT, with garbage left in the arena by an earlier step (so an element the
// overwrite path failed to write would show).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "models/dit.h"
#include "ops/grad_mode.h"
#include "support/util.h"

using namespace rae;

namespace {

struct Grads {
  std::vector<Tensor> params;
  Tensor out;
};

// One forward + backward of `preset` (random, non-zero adaLN), after a step on other inputs
// has filled the arena with its values.
Grads run(const std::string& preset, bool overwrite) {
  ops::set_grad_overwrite(overwrite);
  models::DiTConfig cfg = models::dit_preset(preset);
  cfg.in_channels = 8, cfg.grid = 4, cfg.num_classes = 5;
  models::DiTDH m(cfg);
  m.init(7);
  for (auto& g : m.params().groups())
    Tensor(g.data).copy_from(rae::test::randn({g.numel}, 11, 0.05));
  const int64_t B = 2, T = cfg.tokens(), C = cfg.in_channels;
  Tensor y = Tensor::empty({B}, DType::I32);
  y.data<int32_t>()[0] = 1, y.data<int32_t>()[1] = 5;
  nn::Arena arena;
  Tensor out = Tensor::empty({B, T, C});
  for (uint64_t seed : {100, 1}) {  // the first pass leaves its values in the arena
    arena.reset();
    m.params().zero_grad();
    Tensor x = rae::test::randn({B, T, C}, seed), t = rae::test::rand_uniform({B}, seed + 1, 0, 1);
    Tensor dout = rae::test::randn({B, T, C}, seed + 2);
    m.forward(arena, out, x, t, y);
    m.backward(arena, dout);
  }
  Grads g;
  g.out = out.clone();
  for (auto& grp : m.params().groups()) g.params.push_back(grp.grad.clone());
  ops::set_grad_overwrite(true);
  return g;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

void check(const std::string& preset) {
  Grads a = run(preset, false), b = run(preset, true);
  EXPECT_TRUE(same_bits(a.out, b.out)) << preset;
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_TRUE(same_bits(a.params[i], b.params[i])) << preset << " parameter group " << i;
    double s = 0;
    for (int64_t j = 0; j < b.params[i].numel(); ++j) s += std::fabs(b.params[i].data<float>()[j]);
    EXPECT_TRUE(std::isfinite(s) && s > 0) << preset << " parameter group " << i;
  }
}

TEST(DiTOverwrite, DiTDHGradientsBitIdenticalToZeroFill) {
  check("DiTDH-micro");
}

TEST(DiTOverwrite, LightningDiTGradientsBitIdenticalToZeroFill) {
  check("DiT-micro");
}

TEST(DiTOverwrite, SwitchDefaultsOn) {
  EXPECT_TRUE(ops::grad_overwrite_enabled());  // RAE_GRAD_OVERWRITE unset in ctest
}

}  // namespace
