// Per-block hooks (nn::BlockHooks) of DiT^DH and LightningDiT: call order (forward 0..D-1,
// backward D-1..0), and a local ZeRO-3 simulation (each block's parameters bound only around its
// use, a fresh gradient buffer per backward, via ParamStore::bind_group) gives bit-identical
// outputs and gradients to the model without hooks (the same ops on the same values).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "models/dit.h"
#include "support/util.h"

using namespace rae;

namespace {

// Keeps every block group's parameters aside and binds them only between before_* and after_*.
class LocalZero3 : public nn::BlockHooks {
 public:
  LocalZero3(nn::ParamStore& ps, const std::vector<int>& blocks) : ps_(ps) {
    for (int i : blocks) {
      group_.push_back(i);
      kept_.push_back(ps.groups()[i].data.clone());
      grads_.push_back(Tensor::zeros({ps.groups()[i].numel}));
      ps.bind_group(static_cast<int>(i), Tensor(), Tensor());
    }
  }
  void before_forward(int k) override {
    log.push_back(k);  // forward k: k, backward k: -1 - k
    ps_.bind_group(group_[k], kept_[k].clone(), Tensor());
  }
  void after_forward(int k) override { ps_.bind_group(group_[k], Tensor(), Tensor()); }
  void before_backward(int k) override {
    log.push_back(-1 - k);
    live_ = Tensor::zeros({kept_[k].numel()});
    ps_.bind_group(group_[k], kept_[k].clone(), live_);
  }
  void after_backward(int k) override {
    grads_[k].copy_from(live_);
    ps_.bind_group(group_[k], Tensor(), Tensor());
  }
  std::vector<int> log;
  std::vector<int> group_;
  std::vector<Tensor> grads_;

 private:
  nn::ParamStore& ps_;
  std::vector<Tensor> kept_;
  Tensor live_;
};

void check_preset(const std::string& preset) {
  models::DiTConfig cfg = models::dit_preset(preset);
  cfg.in_channels = 8, cfg.grid = 4, cfg.num_classes = 5;
  models::DiTDH plain(cfg), hooked(cfg);
  plain.init(7), hooked.init(7);
  // Non-zero adaLN so that every block's gradients are non-trivial.
  for (models::DiTDH* m : {&plain, &hooked})
    for (auto& g : m->params().groups()) {
      Tensor r = rae::test::randn({g.numel}, 11, 0.05);
      Tensor(g.data).copy_from(r);
    }
  LocalZero3 hooks(hooked.params(), hooked.block_groups());
  hooked.set_block_hooks(&hooks);
  const int64_t B = 2, T = cfg.tokens(), C = cfg.in_channels;
  Tensor x = rae::test::randn({B, T, C}, 1), t = rae::test::rand_uniform({B}, 2, 0, 1);
  Tensor y = Tensor::empty({B}, DType::I32);
  y.data<int32_t>()[0] = 1, y.data<int32_t>()[1] = 5;
  Tensor dout = rae::test::randn({B, T, C}, 3);
  Tensor out_a = Tensor::empty({B, T, C}), out_b = Tensor::empty({B, T, C});
  nn::Arena arena_a, arena_b;
  plain.params().zero_grad(), hooked.params().zero_grad();
  plain.forward(arena_a, out_a, x, t, y);
  hooked.forward(arena_b, out_b, x, t, y);
  plain.backward(arena_a, dout);
  hooked.backward(arena_b, dout);
  // Bit-identical: the hooks only move where the same values live.
  for (int64_t i = 0; i < out_a.numel(); ++i)
    ASSERT_EQ(out_a.data<float>()[i], out_b.data<float>()[i]) << preset << " out " << i;
  const int D = static_cast<int>(cfg.body_depth + cfg.head_depth);
  ASSERT_EQ(static_cast<int>(hooks.group_.size()), D);
  std::vector<int> want;
  for (int k = 0; k < D; ++k) want.push_back(k);
  for (int k = D - 1; k >= 0; --k) want.push_back(-1 - k);
  EXPECT_EQ(hooks.log, want) << preset;
  const auto& ga = plain.params().groups();
  const auto& gb = hooked.params().groups();
  for (size_t i = 0; i < ga.size(); ++i) {
    Tensor a = ga[i].grad, b = gb[i].grad;
    for (int k = 0; k < D; ++k)
      if (hooks.group_[k] == static_cast<int>(i)) b = hooks.grads_[k];
    ASSERT_TRUE(b.defined()) << ga[i].name;
    double sum = 0;
    for (int64_t j = 0; j < a.numel(); ++j) {
      ASSERT_EQ(a.data<float>()[j], b.data<float>()[j]) << preset << " " << ga[i].name << " " << j;
      sum += std::abs(a.data<float>()[j]);
    }
    EXPECT_GT(sum, 0) << preset << " " << ga[i].name;
  }
}

}  // namespace

TEST(DiTBlockHooks, DiTDHOrderAndLocalZero3BitIdentical) {
  check_preset("DiTDH-micro");
}
TEST(DiTBlockHooks, LightningDiTOrderAndLocalZero3BitIdentical) {
  check_preset("DiT-micro");
}
