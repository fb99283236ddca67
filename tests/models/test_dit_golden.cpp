// DiT^DH against tests/reference/make_dit_golden.py (a PyTorch DiTwDDTHead written from the
// release, computed in float64 from float32 parameters): output, loss, EVERY parameter
// gradient, and the losses and gradient norms of 10 AdamW steps with clipping.
#include <gtest/gtest.h>

#include <cmath>

#include "io/safetensors.h"
#include "models/dit.h"
#include "ops/elementwise.h"
#include "ops/optim.h"
#include "support/util.h"
#include "train/optimizer.h"

using namespace rae;

namespace {

struct Golden {
  safetensors::File f;
  std::map<std::string, Tensor> params;
};

Golden load_golden(const std::string& file) {
  Golden g{safetensors::load(test::golden_path("dit/" + file)), {}};
  for (auto& n : g.f.names)
    if (n.rfind("param.", 0) == 0) g.params[n.substr(6)] = g.f.get(n);
  return g;
}

std::unique_ptr<models::DiTDH> make_model(const Golden& g, const std::string& preset) {
  models::DiTConfig c = models::dit_preset(preset);
  c.in_channels = 8, c.grid = 4, c.num_classes = 5;
  auto m = std::make_unique<models::DiTDH>(c);
  m->params().load_state_dict(g.params, "tiny_ditdh.safetensors");
  return m;
}

double loss_and_grad(models::DiTDH& m, nn::Arena& arena, const Golden& g, Tensor& out) {
  Tensor x = g.f.get("in.x"), target = g.f.get("in.target");
  out = Tensor::empty(x.shape());
  arena.reset();
  m.params().zero_grad();
  m.forward(arena, out, x, g.f.get("in.t"), g.f.get("in.y"));
  double loss = ops::mse_forward(out, target);
  Tensor dout = Tensor::zeros(x.shape());
  ops::mse_backward(dout, out, target, 1.0);
  m.backward(arena, dout);
  return loss;
}

}  // namespace

// DiT^DH (tiny_ditdh) and the plain LightningDiT (tiny_dit), both from make_dit_golden.py.
class DiTGolden : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(DiTGolden, ForwardLossAndEveryGradient) {
  Golden g = load_golden(GetParam().first);
  auto model = make_model(g, GetParam().second);
  models::DiTDH& m = *model;
  nn::Arena arena;
  Tensor out;
  double loss = loss_and_grad(m, arena, g, out);
  // Output: float32 arithmetic against a float64 reference over ~10 layers; values are O(1),
  // so 1e-5 absolute + 1e-4 relative covers f32 rounding (~1e-7 per op, amplified by depth).
  EXPECT_LE(test::tolerance_ratio(out, g.f.get("out"), 1e-5, 1e-4), 1.0);
  EXPECT_NEAR(loss, g.f.get("loss").item(0), 1e-5 * loss);
  // Gradients: same reasoning; the backward chain is twice as long and reductions run over
  // up to 48 rows, so atol is 1e-5 of the largest gradient of the tensor plus 1e-3 relative.
  int checked = 0;
  for (auto& p : m.params().params()) {
    Tensor ref = g.f.get("grad." + p.name);
    Tensor got = m.params().grad(m.params().find(p.name));
    double scale = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, std::abs(ref.item(i)));
    double r = test::tolerance_ratio(got.view(ref.shape()), ref, 1e-5 * scale + 1e-9, 1e-3);
    EXPECT_LE(r, 1.0) << p.name << " max |diff| " << test::max_abs_diff(got.view(ref.shape()), ref)
                      << " scale " << scale;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(m.params().params().size()));
  EXPECT_GT(checked, 35);
}

TEST_P(DiTGolden, TenAdamWStepsWithClipping) {
  Golden g = load_golden(GetParam().first);
  auto model = make_model(g, GetParam().second);
  models::DiTDH& m = *model;
  Tensor hp = g.f.get("adam.hparams");
  train::OptimSettings os;
  os.beta1 = hp.item(1), os.beta2 = hp.item(2), os.eps = 1e-8, os.weight_decay = hp.item(3);
  std::vector<Tensor> values, grads;  // the flat groups, as the sharding core's one shard
  for (auto& grp : m.params().groups()) values.push_back(grp.data), grads.push_back(grp.grad);
  train::AdamW adam(values, grads, os);
  nn::Arena arena;
  Tensor ref_losses = g.f.get("adam.losses"), ref_norms = g.f.get("adam.grad_norms");
  for (int s = 0; s < 10; ++s) {
    Tensor out;
    double loss = loss_and_grad(m, arena, g, out);
    double sq = 0;
    for (const Tensor& gr : grads) sq += ops::sum_squares(gr);
    const double norm = std::sqrt(sq);
    // Trajectories of f32 vs f64 drift slowly; 1e-4 relative over 10 steps of lr 1e-2.
    EXPECT_NEAR(loss, ref_losses.item(s), 1e-4 * ref_losses.item(s)) << "step " << s;
    EXPECT_NEAR(norm, ref_norms.item(s), 1e-4 * ref_norms.item(s)) << "step " << s;
    adam.step(hp.item(0), ops::clip_coefficient(norm, hp.item(4)));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DiTGolden,
                         ::testing::Values(std::make_pair("tiny_ditdh.safetensors", "DiTDH-micro"),
                                           std::make_pair("tiny_dit.safetensors", "DiT-micro")),
                         [](const auto& info) {
                           return std::string(info.param.second).find("DiTDH") == 0
                                      ? std::string("DiTDH")
                                      : std::string("LightningDiT");
                         });
