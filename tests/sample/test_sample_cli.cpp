// `rae sample`, `rae decode` and `rae reconstruct` end to end through the executable:
// - sampler parity: from the golden's noise file (initial and per-step SDE noise) `rae sample`
//   reproduces the PyTorch transcription of the release (make_sampler_golden.py) for Euler + CFG
//   interval, Heun + CFG and SDE + AutoGuidance, within 1e-5 relative on the final latents;
// - samples.npz rows in global-index order equal the PNGs, and `rae decode` of the kept latents;
// - `rae reconstruct` writes pairs, a grid and metrics matching its pairs;
// - bad arguments are refused with messages naming the option (issue-15 cases).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/image_decode.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "sample/sample_test_util.h"
#include "sampling/image_metrics.h"
#include "support/util.h"

using namespace rae;

namespace {

std::string golden(const std::string& name) {
  return test::golden_path("sample/" + name);
}

}  // namespace

TEST(SampleCli, MatchesReleaseTranscriptionFromNoiseFile) {
  const std::string gpath = golden("sampler_parity.safetensors");
  auto g = safetensors::load(gpath);
  auto cases = nlohmann::json::parse(g.metadata.at("cases"));
  const std::string base = "sample --model " + golden("micro_model.safetensors") +
                           " --noise-file " + gpath + " --labels 4,0,2 --shift-base 16 --batch 2";
  int checked = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    if (name != "euler_cfg" && name != "heun_cfg" && name != "sde_ag") continue;
    const std::string dir = test::make_temp_dir("sample_cli_" + name);
    char interval[64];
    std::snprintf(interval, sizeof interval, "%.17g,%.17g", c.at("t_min").get<double>(),
                  c.at("t_max").get<double>());
    std::string args = base + " --out " + dir + "/out --sampler " +
                       c.at("sampler").get<std::string>() + " --steps " +
                       std::to_string(c.at("steps").get<int>()) + " --cfg-scale " +
                       std::to_string(c.at("scale").get<double>()) + " --cfg-interval " + interval;
    if (c.at("guidance") == "autoguidance")
      args += " --guide-model " + golden("micro_guide.safetensors");
    if (c.at("sampler") == "sde")
      args += " --sde-diffusion " + c.at("diffusion").get<std::string>() + " --sde-last-step " +
              c.at("last_step").get<std::string>();
    std::string err;
    ASSERT_EQ(test::run_rae(args, &err), 0) << args << "\n" << err;
    npz::Reader r(dir + "/out/latents.npz");
    Tensor lat = r.read("latents", DType::F32, {3, 16, 8});
    Tensor labels = r.read("labels", DType::I32, {3});
    EXPECT_EQ(labels.data<int32_t>()[0], 4);
    EXPECT_EQ(labels.data<int32_t>()[2], 2);
    double e = test::rel_error(lat, test::nchw_to_tokens(g.get("case." + name)));
    EXPECT_LE(e, 1e-5) << name;
    std::printf("  rae sample %-9s relative error %.2e\n", name.c_str(), e);
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(SampleCli, NpzRowsAreThePngsInGlobalOrder) {
  const std::string dir = test::make_temp_dir("sample_cli_png");
  std::string err;
  ASSERT_EQ(
      test::run_rae("sample --model " + golden("micro_model.safetensors") +
                        " --decoder random:ViT-micro --stats none --classes 1,3 --num-per-class 3"
                        " --shift-base 16 --steps 4 --batch 4 --png --out " +
                        dir + "/o",
                    &err),
      0)
      << err;
  npz::Reader r(dir + "/o/samples.npz");
  ASSERT_EQ(r.arrays().size(), 2u);
  Tensor a = r.read("arr_0", DType::U8, {6, 16, 16, 3});
  Tensor labels = r.read("labels", DType::I32, {6});  // class-major: 1, 1, 1, 3, 3, 3
  for (int g = 0; g < 6; ++g) EXPECT_EQ(labels.data<int32_t>()[g], g < 3 ? 1 : 3) << g;
  for (int g = 0; g < 6; ++g) {
    char name[32];
    std::snprintf(name, sizeof name, "/o/png/%06d.png", g);
    data::Image im = data::decode_image_file(dir + name);
    ASSERT_EQ(im.width, 16);
    EXPECT_TRUE(std::equal(im.pixels.begin(), im.pixels.end(), a.data<uint8_t>() + g * 768)) << g;
  }
  // grid.png: 2 class rows of 3 samples, 2 px padding.
  data::Image grid = data::decode_image_file(dir + "/o/grid.png");
  EXPECT_EQ(grid.width, 2 + 3 * 18);
  EXPECT_EQ(grid.height, 2 + 2 * 18);
}

TEST(SampleCli, RefusesBadArguments) {
  const std::string dir = test::make_temp_dir("sample_cli_bad");
  const std::string base =
      "sample --model " + golden("micro_model.safetensors") + " --out " + dir + "/o ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--num-per-class 1 --cfg-scale nan", "--cfg-scale must be a finite number"},
      {"--num-per-class 1 --cfg-scale inf", "--cfg-scale must be a finite number"},
      {"--num-per-class 1 --shift-base 0", "--shift-base must be > 0"},
      {"--num-per-class 1 --shift-base -3", "--shift-base must be > 0"},
      {"--labels 1,,2", "--labels: empty item 2 in '1,,2'"},
      {"--labels 1,x", "--labels: 'x' (item 2 of '1,x') is not an integer"},
      {"--labels 1,2,", "--labels: trailing ','"},
      {"--labels 6", "--labels: 6 is not a class of the model"},
      {"--labels 1 --num-per-class 2", "do not combine it with --classes or --num-per-class"},
      {"--classes 3-1 --num-per-class 1", "--classes: range '3-1' runs backwards"},
      {"--classes 0,7 --num-per-class 1", "--classes: 7 is not a class of the model"},
      {"--classes -2 --num-per-class 1", "is not a class index"},
      {"--classes 1", "give --num-per-class"},
      {"--num-per-class 0", "--num-per-class must be > 0"},
      {"--num-per-class 1 --cfg-scale 2 --cfg-interval 0.6,0.2", "t_min < t_max"},
      {"--num-per-class 1 --cfg-interval 0.2", "--cfg-interval: '0.2' is not T_MIN,T_MAX"},
      {"--num-per-class 1 --sampler sde --sde-diffusion SBDM", "NaN"},
      {"--num-per-class 1 --sampler dopri5", "unknown sampler 'dopri5'"},
      {"--num-per-class 1 --steps 1", "--steps must be >= 2"},
      {"--num-per-class 1 --cfg-scale 0.5", "--cfg-scale must be >= 1"},
      {"--num-per-class 1 --guide-model " + golden("micro_guide.safetensors"),
       "--guide-model needs --cfg-scale > 1"},
      {"--num-per-class 1 --decoder random:ViT-tiny --stats none", "decodes 256 x 8 latents"},
  };
  for (const auto& [args, expect] : cases) {
    std::string err;
    // The micro model needs a small shift base (shift >= 1) unless the case is about it.
    const std::string shift =
        args.find("--shift-base") == std::string::npos ? " --shift-base 16" : "";
    EXPECT_EQ(test::run_rae(base + args + shift, &err), 1) << args;
    EXPECT_NE(err.find(expect), std::string::npos) << args << "\n" << err;
  }
}

// `rae decode` of the latents `rae sample --save-latents` kept gives the images it wrote: the
// latents.npz carries the statistics the job de-normalised with (--stats here overrides the
// model's none), so decode needs no --stats.
TEST(SampleCli, DecodeOfKeptLatentsGivesTheSamples) {
  const std::string dir = test::make_temp_dir("sample_cli_decode");
  // Latent statistics in the release's (C, H, W) layout, from the decoder golden.
  auto dg = safetensors::load(test::golden_path("decoder/micro_decoder.safetensors"));
  safetensors::save(dir + "/stat.safetensors",
                    {{"mean", dg.get("pipe.mean")}, {"var", dg.get("pipe.var")}});
  const std::string dec = " --decoder random:ViT-micro:5 --stats " + dir + "/stat.safetensors";
  std::string err;
  ASSERT_EQ(
      test::run_rae("sample --model " + golden("micro_model.safetensors") + dec +
                        " --labels 0,1,2,3,4 --shift-base 16 --steps 4 --save-latents --out " +
                        dir + "/s",
                    &err),
      0)
      << err;
  ASSERT_EQ(test::run_rae("decode --decoder random:ViT-micro:5 --latents " + dir +
                              "/s/latents.npz --batch 2 --out " + dir + "/d",
                          &err),
            0)
      << err;
  npz::Reader lat(dir + "/s/latents.npz");
  EXPECT_EQ(test::max_abs_diff(lat.read("latent_stats.var"),
                               test::nchw_to_tokens(dg.get("pipe.var").view({1, 8, 4, 4}))
                                   .cast(DType::F32)
                                   .view({16, 8})),
            0.0);
  Tensor a = npz::Reader(dir + "/s/samples.npz").read("arr_0", DType::U8, {5, 16, 16, 3});
  for (int g = 0; g < 5; ++g) {
    char name[32];
    std::snprintf(name, sizeof name, "/d/%06d.png", g);
    data::Image im = data::decode_image_file(dir + name);
    EXPECT_TRUE(std::equal(im.pixels.begin(), im.pixels.end(), a.data<uint8_t>() + g * 768)) << g;
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/d/grid.png"));
}

// `rae reconstruct`: pairs of (ADM center crop | reconstruction), a grid, and metrics.json whose
// PSNR and SSIM are those of the pairs.
TEST(SampleCli, ReconstructWritesPairsGridAndMetrics) {
  const std::string dir = test::make_temp_dir("sample_cli_reconstruct");
  std::string err;
  ASSERT_EQ(test::run_rae("make-dataset --out " + dir + "/ds --classes 2 --per-class 2", &err), 0)
      << err;
  ASSERT_EQ(
      test::run_rae("reconstruct --encoder tiny-random --decoder random:ViT-tiny:1 --stats none "
                    "--data " +
                        dir + "/ds --num 3 --batch 2 --out " + dir + "/r",
                    &err),
      0)
      << err;
  auto m = nlohmann::json::parse(test::read_text(dir + "/r/metrics.json"));
  ASSERT_EQ(m.at("count"), 3);
  double psnr_sum = 0;
  for (int i = 0; i < 3; ++i) {
    char name[40];
    std::snprintf(name, sizeof name, "/r/pairs/%06d.png", i);
    data::Image pair = data::decode_image_file(dir + name);
    ASSERT_EQ(pair.width, 2 + 2 * (256 + 2));
    std::vector<uint8_t> o(256 * 256 * 3), r(256 * 256 * 3);
    for (int y = 0; y < 256; ++y) {
      std::copy_n(pair.row(2 + y) + 2 * 3, 256 * 3, o.data() + y * 256 * 3);
      std::copy_n(pair.row(2 + y) + (2 + 258) * 3, 256 * 3, r.data() + y * 256 * 3);
    }
    const auto& e = m.at("images").at(i);
    EXPECT_NEAR(e.at("psnr").get<double>(), sampling::psnr(o.data(), r.data(), 256, 256), 1e-9);
    EXPECT_NEAR(e.at("ssim").get<double>(), sampling::ssim(o.data(), r.data(), 256, 256), 1e-9);
    psnr_sum += e.at("psnr").get<double>();
  }
  EXPECT_NEAR(m.at("mean").at("psnr").get<double>(), psnr_sum / 3, 1e-9);
  EXPECT_TRUE(std::filesystem::exists(dir + "/r/grid.png"));
}

// --model RUN_DIR: the newest checkpoint's EMA weights consolidated in memory sample exactly what
// its `rae export --ema` file samples, and the latents carry the run's latent statistics.
TEST(SampleCli, RunDirectorySamplesLikeItsExport) {
  const std::string dir = test::make_temp_dir("sample_cli_rundir");
  std::string err;
  ASSERT_EQ(test::run_rae("train --config " + test::source_dir() +
                              "/jobs/tiny.cfg --cache synthetic:64x4x8x5 --run-dir " + dir +
                              "/run --steps 3 --log.progress=false",
                          &err),
            0)
      << err;
  ASSERT_EQ(test::run_rae(
                "export --run-dir " + dir + "/run --ema --out " + dir + "/ema.safetensors", &err),
            0)
      << err;
  const std::string args = " --labels 0,3,4 --steps 4 --cfg-scale 1.5 --shift-base 16";
  for (const char* m : {"run", "ema.safetensors", "run/checkpoints/step-0000003"})
    ASSERT_EQ(test::run_rae("sample --model " + dir + "/" + m + args + " --out " + dir + "/s-" +
                                std::filesystem::path(m).filename().string(),
                            &err),
              0)
        << m << ": " << err;
  const std::string a = test::read_text(dir + "/s-run/latents.npz");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, test::read_text(dir + "/s-ema.safetensors/latents.npz"));
  EXPECT_EQ(a, test::read_text(dir + "/s-step-0000003/latents.npz"));
  npz::Reader r(dir + "/s-run/latents.npz");
  EXPECT_TRUE(r.contains("latent_stats.mean"));
  EXPECT_EQ(r.read("latent_stats.var").shape(), (Shape{16, 8}));
  // --no-ema samples the trained weights: other latents.
  ASSERT_EQ(
      test::run_rae("sample --no-ema --model " + dir + "/run" + args + " --out " + dir + "/s-raw",
                    &err),
      0)
      << err;
  EXPECT_NE(a, test::read_text(dir + "/s-raw/latents.npz"));
}

// rFID: `rae reconstruct --ref REF --inception synthetic` scores the reconstructions in memory
// through eval::evaluate_samples; its metrics.json equals `rae eval` run on the same
// reconstructions (cut out of the pairs, written as an ADM sample .npz) against the same
// reference. Synthetic Inception weights: the numbers mean nothing, the plumbing is what is
// checked.
TEST(SampleCli, ReconstructReportsRfidThroughEval) {
  const std::string dir = test::make_temp_dir("sample_cli_rfid");
  std::string err;
  ASSERT_EQ(test::run_rae("make-dataset --out " + dir + "/ds --classes 2 --per-class 2", &err), 0)
      << err;
  ASSERT_EQ(test::run_rae("eval stats --images " + dir +
                              "/ds/train --image-size 256 --inception synthetic --batch 4 "
                              "--ref-images 4 --out " +
                              dir + "/ref.npz",
                          &err),
            0)
      << err;
  ASSERT_EQ(
      test::run_rae("reconstruct --encoder tiny-random --decoder random:ViT-tiny:1 --stats none "
                    "--data " +
                        dir + "/ds --num 4 --batch 2 --out " + dir + "/r --ref " + dir +
                        "/ref.npz --inception synthetic --eval-batch 4",
                    &err),
      0)
      << err;
  auto m = nlohmann::json::parse(test::read_text(dir + "/r/metrics.json"));
  ASSERT_TRUE(m.contains("rfid")) << m.dump(1);
  EXPECT_TRUE(std::isfinite(m.at("rfid").get<double>()));
  EXPECT_EQ(m.at("rfid"), m.at("eval").at("fid"));
  EXPECT_EQ(m.at("eval").at("counts").at("samples"), 4);
  for (const char* k : {"sfid", "inception_score", "precision", "recall"})
    EXPECT_TRUE(m.at("eval").contains(k)) << k;
  // The same reconstructions through `rae eval`.
  Tensor recon = Tensor::empty({4, 256, 256, 3}, DType::U8);
  for (int i = 0; i < 4; ++i) {
    char name[40];
    std::snprintf(name, sizeof name, "/r/pairs/%06d.png", i);
    data::Image pair = data::decode_image_file(dir + name);
    for (int y = 0; y < 256; ++y)
      std::copy_n(pair.row(2 + y) + (2 + 258) * 3, 256 * 3,
                  recon.data<uint8_t>() + (static_cast<int64_t>(i) * 256 + y) * 256 * 3);
  }
  {
    npz::Writer w(dir + "/recon.npz");
    w.add("arr_0", recon);
    w.commit();
  }
  ASSERT_EQ(test::run_rae("eval --samples " + dir + "/recon.npz --ref " + dir +
                              "/ref.npz --inception synthetic --batch 4 --out " + dir + "/e.json",
                          &err),
            0)
      << err;
  auto e = nlohmann::json::parse(test::read_text(dir + "/e.json"));
  EXPECT_EQ(m.at("rfid").get<double>(), e.at("fid").get<double>());
  EXPECT_EQ(m.at("eval").at("inception_score"), e.at("inception_score"));
}
