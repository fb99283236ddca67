// `rae model-forward` and `rae sample` end to end on the DiT^DH golden: the state dict (with its
// dit_config metadata, as our checkpoints and the converter write it) and NCHW inputs go through
// the CLI, and the output must match the PyTorch golden.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "io/npz.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "support/util.h"

using namespace rae;

namespace {

// (B, T, C) -> (B, C, H, W).
Tensor tokens_to_nchw(const Tensor& tok, int64_t g) {
  const int64_t B = tok.dim(0), T = tok.dim(1), C = tok.dim(2);
  Tensor out = Tensor::empty({B, C, g, g});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c)
        out.data<float>()[(b * C + c) * T + t] = static_cast<float>(tok.item((b * T + t) * C + c));
  return out;
}

}  // namespace

TEST(DiTCli, ModelForwardMatchesGoldenInNCHW) {
  auto g = safetensors::load(test::golden_path("dit/tiny_ditdh.safetensors"));
  std::map<std::string, Tensor> sd;
  for (auto& n : g.names)
    if (n.rfind("param.", 0) == 0) sd[n.substr(6)] = g.get(n);
  models::DiTConfig c = models::dit_preset("DiTDH-micro");
  c.in_channels = 8, c.grid = 4, c.num_classes = 5;
  std::string dir = test::make_temp_dir("dit_cli");
  safetensors::save(dir + "/model.safetensors", sd, {{"dit_config", c.to_json()}});
  safetensors::save(
      dir + "/in.safetensors",
      {{"x", tokens_to_nchw(g.get("in.x"), 4)}, {"t", g.get("in.t")}, {"y", g.get("in.y")}});
  std::string cmd = test::rae_exe() + " model-forward --checkpoint " + dir +
                    "/model.safetensors --inputs " + dir + "/in.safetensors --out " + dir +
                    "/out.safetensors";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Tensor out = safetensors::load(dir + "/out.safetensors").get("out");
  ASSERT_EQ(out.shape(), (Shape{3, 8, 4, 4}));
  // Same tolerance as test_dit_golden (f32 against the f64 reference).
  EXPECT_LE(test::tolerance_ratio(out, tokens_to_nchw(g.get("out"), 4), 1e-5, 1e-4), 1.0);

  cmd = test::rae_exe() + " sample --model " + dir + "/model.safetensors --labels 0,4,5 " +
        "--steps 5 --cfg-scale 2 --shift-base 16 --out " + dir + "/s";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Tensor lat = npz::Reader(dir + "/s/latents.npz").read("latents");
  EXPECT_EQ(lat.shape(), (Shape{3, 16, 8}));
  for (int64_t i = 0; i < lat.numel(); ++i) ASSERT_TRUE(std::isfinite(lat.item(i)));
  // A label past the null class is rejected, naming the option.
  cmd = test::rae_exe() + " sample --model " + dir +
        "/model.safetensors --labels 6 --shift-base 16 " + "--out " + dir + "/bad 2> " + dir +
        "/err.txt";
  EXPECT_NE(std::system(cmd.c_str()), 0);
}
