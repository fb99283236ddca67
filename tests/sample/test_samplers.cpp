// The samplers (diffusion/samplers.h) against tests/reference/make_sampler_golden.py, a PyTorch
// transcription of the release's sampling path (Euler and Heun through torchdiffeq's fixed-grid
// steps, Euler-Maruyama with the "Mean" last step, CFG with an interval, AutoGuidance with a
// second model), run from the same noise on the same tiny DiT^DH (guide: a plain LightningDiT);
// plus analytic checks and the option validation.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "diffusion/flow.h"
#include "diffusion/samplers.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "sample/sample_test_util.h"
#include "sampling/noise.h"
#include "sampling/velocity.h"
#include "support/util.h"

using namespace rae;
using diffusion::Guidance;
using diffusion::SamplerOptions;

namespace {

std::unique_ptr<models::DiTDH> golden_model(const std::string& file, const std::string& preset) {
  auto g = safetensors::load(test::golden_path("dit/" + file));
  std::map<std::string, Tensor> sd;
  for (auto& n : g.names)
    if (n.rfind("param.", 0) == 0) sd[n.substr(6)] = g.get(n);
  models::DiTConfig c = models::dit_preset(preset);
  c.in_channels = 8, c.grid = 4, c.num_classes = 5;
  auto m = std::make_unique<models::DiTDH>(c);
  m->params().load_state_dict(sd, file);
  return m;
}

}  // namespace

// For data at a single point c, v(x, t) = (x - c) / t and Euler is exact on any grid:
// x_end = c + t_end (x_1 - c). With CFG between two points the guided field points at
// c_null + s (c_cond - c_null).
TEST(Samplers, EulerExactForPointMassWithCfg) {
  SamplerOptions o;
  o.num_steps = 50;
  o.shift = 2.5;
  Guidance g;
  g.method = Guidance::Method::Cfg, g.scale = 1.5, g.null_label = 7;
  const float c_cond = 2.0f, c_null = -1.0f;
  Tensor x = Tensor::full({2, 1, 3}, 0.5), labels = Tensor::full({2}, 1, DType::I32);
  diffusion::Velocity v = [&](const Tensor& out, const Tensor& xin, double t, const Tensor& y) {
    for (int64_t b = 0; b < xin.dim(0); ++b) {
      float c = y.data<int32_t>()[b] == 7 ? c_null : c_cond;
      for (int64_t i = 0; i < 3; ++i)
        out.data<float>()[b * 3 + i] = (xin.data<float>()[b * 3 + i] - c) / static_cast<float>(t);
    }
  };
  diffusion::sample(o, diffusion::guided_velocity(v, nullptr, g), x, labels);
  auto grid = diffusion::time_grid(o);
  EXPECT_EQ(grid.front(), 1.0);
  EXPECT_NEAR(grid.back(), diffusion::apply_shift(0.001, 2.5), 1e-6);
  const double c_eff = c_null + 1.5 * (c_cond - c_null), t_end = grid.back();
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_NEAR(x.data<float>()[i], c_eff + t_end * (0.5 - c_eff), 1e-4);
}

// The grids are the release's float32 ones: 1 - linspace(0, t1, N), shifted.
TEST(Samplers, TimeGridsAreTheReleases) {
  SamplerOptions o;
  o.shift = std::sqrt(16.0 * 16 * 768 / 4096);
  auto g = diffusion::time_grid(o);
  ASSERT_EQ(g.size(), 50u);
  EXPECT_EQ(g[0], 1.0);
  for (size_t i = 1; i < g.size(); ++i) EXPECT_LT(g[i], g[i - 1]);
  EXPECT_NEAR(g.back(), diffusion::apply_shift(0.001, o.shift), 1e-7);
  EXPECT_EQ(g[10], static_cast<double>(static_cast<float>(g[10])));  // float32 values
  o.kind = diffusion::SamplerKind::Sde;
  auto s = diffusion::time_grid(o);
  EXPECT_NEAR(s.back(), diffusion::apply_shift(0.04, o.shift), 1e-6);  // 1 - (1 - h)
  EXPECT_EQ(diffusion::velocity_calls(o), 50);                         // 49 steps + last step
  o.kind = diffusion::SamplerKind::Heun;
  EXPECT_EQ(diffusion::velocity_calls(o), 98);
}

TEST(Samplers, RefusesWhatCannotRun) {
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  SamplerOptions o;
  o.kind = diffusion::SamplerKind::Sde;
  o.diffusion = diffusion::DiffusionForm::Sbdm;
  EXPECT_NE(message([&] { diffusion::validate(o); }).find("NaN"), std::string::npos);
  o = SamplerOptions{};
  o.shift = 0;
  EXPECT_NE(message([&] { diffusion::validate(o); }).find("shift"), std::string::npos);
  o.shift = NAN;
  EXPECT_NE(message([&] { diffusion::validate(o); }).find("shift"), std::string::npos);
  o = SamplerOptions{};
  o.num_steps = 1;
  EXPECT_NE(message([&] { diffusion::validate(o); }).find("--steps"), std::string::npos);
  Guidance g;
  g.method = Guidance::Method::Cfg, g.scale = NAN;
  EXPECT_NE(message([&] { diffusion::validate(g, false); }).find("--cfg-scale"), std::string::npos);
  g.scale = 2, g.t_min = 0.5, g.t_max = 0.5;
  EXPECT_NE(message([&] { diffusion::validate(g, false); }).find("t_min < t_max"),
            std::string::npos);
  g = Guidance{};
  g.method = Guidance::Method::AutoGuidance, g.scale = 1.42;
  EXPECT_NE(message([&] { diffusion::validate(g, false); }).find("--guide-model"),
            std::string::npos);
  EXPECT_THROW(diffusion::sampler_kind_from_name("dopri5"), Error);
  EXPECT_THROW(diffusion::diffusion_form_from_name("cosine"), Error);
}

// Outside [t_min, t_max] guidance costs nothing: one conditional forward of B samples.
TEST(Samplers, GuidanceSkipsTheSecondForwardOutsideItsInterval) {
  int calls = 0, rows = 0;
  diffusion::Velocity v = [&](const Tensor& out, const Tensor& x, double, const Tensor&) {
    ++calls, rows += static_cast<int>(x.dim(0));
    Tensor(out).copy_from(x);
  };
  Guidance g;
  g.method = Guidance::Method::Cfg, g.scale = 3, g.t_min = 0.2, g.t_max = 0.4;
  auto gv = diffusion::guided_velocity(v, nullptr, g);
  Tensor x = Tensor::full({2, 1, 1}, 1.0), out = Tensor::empty({2, 1, 1});
  Tensor y = Tensor::full({2}, 0, DType::I32);
  gv(out, x, 0.5, y);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(rows, 2);
  gv(out, x, 0.3, y);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(rows, 6);  // [x; x] with [y; null] in one forward
}

// Every case of the golden on `device`: final latents within 1e-5 of the transcription's
// (relative to the largest entry), fp32 against its float64 models.
void check_parity(Device device) {
  const std::string path = test::golden_path("sample/sampler_parity.safetensors");
  auto golden = safetensors::load(path);
  auto cases = nlohmann::json::parse(golden.metadata.at("cases"));
  const double shift_base = std::stod(golden.metadata.at("shift_base"));
  auto model = golden_model("tiny_ditdh.safetensors", "DiTDH-micro");
  auto guide = golden_model("tiny_dit.safetensors", "DiT-micro");
  model->to(device), guide->to(device);
  const int64_t T = 16, C = 8;
  sampling::NoiseFile noise(path, T, C);
  const std::vector<int64_t> ids = {0, 1, 2};
  Tensor y = golden.get("labels").to(device);
  for (const auto& c : cases) {
    SamplerOptions o;
    o.kind = diffusion::sampler_kind_from_name(c.at("sampler"));
    o.num_steps = c.at("steps");
    o.shift = diffusion::time_shift(T * C, shift_base);
    if (o.kind == diffusion::SamplerKind::Sde) {
      o.diffusion = diffusion::diffusion_form_from_name(c.at("diffusion"));
      o.last_step = diffusion::last_step_from_name(c.at("last_step"));
      o.last_step_size = c.at("last_step_size");
    }
    Guidance g;
    const std::string method = c.at("guidance");
    g.method = method == "cfg"            ? Guidance::Method::Cfg
               : method == "autoguidance" ? Guidance::Method::AutoGuidance
                                          : Guidance::Method::None;
    g.scale = c.at("scale"), g.t_min = c.at("t_min"), g.t_max = c.at("t_max");
    g.null_label = 5;
    auto v = diffusion::guided_velocity(sampling::denoiser_velocity(*model, device),
                                        sampling::denoiser_velocity(*guide, device), g);
    Tensor x = Tensor::empty({3, T, C}, DType::F32, device);
    noise.fill_initial(x, ids);
    diffusion::sample(o, v, x, y,
                      [&](int step, const Tensor& out) { noise.fill_sde(step, out, ids); });
    const std::string name = c.at("name");
    double err =
        test::rel_error(x.to(Device::cpu()), test::nchw_to_tokens(golden.get("case." + name)));
    EXPECT_LE(err, 1e-5) << name << " on " << device.str();
    std::printf("  %-10s on %s: relative error %.2e\n", name.c_str(), device.str().c_str(), err);
  }
}

TEST(SamplerParity, LibraryMatchesReleaseTranscription) {
  check_parity(Device::cpu());
}

TEST(SamplerParity, CudaMatchesReleaseTranscription) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  check_parity(Device::cuda());
}
