// Latent normalisation (diffusion/latent_norm.h) against the release's formula: the golden is
// PyTorch float32 on the release's (B, C, H, W) layout
// (tests/reference/make_latent_norm_golden.py). Tolerance: 1 float32 ulp (relative 2^-23, plus 1e-7
// absolute for results near 0): PyTorch's vectorised CPU sqrt (AVX-512) is not always correctly
// rounded (off by one ulp on a few elements), ours is, so the golden can differ in the last bit.
// The CUDA version must equal the CPU version bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "core/device.h"
#include "diffusion/latent_norm.h"
#include "io/safetensors.h"
#include "support/util.h"

using namespace rae;

namespace {

struct Golden {
  safetensors::File f;
  diffusion::LatentStats stats;
};

Golden load() {
  Golden g{safetensors::load(test::golden_path("diffusion/latent_norm.safetensors")), {}};
  g.stats.mean = g.f.get("mean").clone();
  g.stats.var = g.f.get("var").clone();
  EXPECT_EQ(std::stod(g.f.metadata.at("eps")), diffusion::kLatentNormEps);
  return g;
}

void expect_bits_equal(const Tensor& got, const Tensor& want, const char* what) {
  Tensor h = got.to(Device::cpu());
  ASSERT_EQ(h.numel(), want.numel());
  EXPECT_EQ(std::memcmp(h.raw(), want.raw(), want.nbytes()), 0) << what;
}

void expect_within_an_ulp(const Tensor& got, const Tensor& want, const char* what) {
  EXPECT_LE(test::tolerance_ratio(got.to(Device::cpu()), want, 1e-7, 1.2e-7), 1.0) << what;
}

}  // namespace

TEST(LatentNorm, MatchesTheReleaseFormula) {
  Golden g = load();
  Tensor z = g.f.get("z").clone();
  diffusion::normalize_latents(z, g.stats);
  expect_within_an_ulp(z, g.f.get("normalized"), "normalize");
  Tensor x = g.f.get("sample").clone();
  diffusion::denormalize_latents(x, g.stats);
  expect_within_an_ulp(x, g.f.get("denormalized"), "denormalize");
}

TEST(LatentNorm, CudaEqualsCpuBitForBit) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  Golden g = load();
  diffusion::LatentStats s = g.stats.to(Device::cuda());
  for (const char* name : {"z", "sample"}) {
    const bool fwd = std::string(name) == "z";
    Tensor cpu = g.f.get(name).clone(), gpu = g.f.get(name).to(Device::cuda());
    fwd ? diffusion::normalize_latents(cpu, g.stats) : diffusion::denormalize_latents(cpu, g.stats);
    fwd ? diffusion::normalize_latents(gpu, s) : diffusion::denormalize_latents(gpu, s);
    expect_bits_equal(gpu, cpu, name);
  }
}

TEST(LatentNorm, StatsTravelWithTheWeights) {
  Golden g = load();
  std::map<std::string, Tensor> t;
  std::map<std::string, std::string> meta;
  g.stats.store(t, meta);
  auto back = diffusion::LatentStats::load(t, meta, "test");
  EXPECT_EQ(test::max_abs_diff(back.mean, g.stats.mean), 0.0);
  EXPECT_EQ(back.eps, g.stats.eps);
  EXPECT_FALSE(diffusion::LatentStats::load({}, {}, "none").defined());
  const int64_t T = g.stats.mean.dim(0), C = g.stats.mean.dim(1);
  EXPECT_NO_THROW(g.stats.check(T, C, "golden"));
  try {
    g.stats.check(T, C + 1, "cache 'x'");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cache 'x'"), std::string::npos) << e.what();
  }
}
