// From latents to images: the release's de-normalisation and uint8 conversion (RAE.decode and
// sample_ddp.py, golden from make_decoder_golden.py), latent statistics files in both layouts,
// PNG writing and grids, and PSNR / SSIM against the release's formula and torchmetrics
// (make_metrics_golden.py).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "data/image_encode.h"
#include "io/safetensors.h"
#include "sample/sample_test_util.h"
#include "sampling/decode.h"
#include "sampling/image_metrics.h"
#include "support/util.h"

using namespace rae;

namespace {

using test::error_of;

std::unique_ptr<models::VitDecoder> decoder_from(const std::string& arg) {
  return sampling::load_decoder(
      sampling::resolve_model_source(arg, "--decoder", true, sampling::is_decoder_model),
      Device::cpu());
}

}  // namespace

TEST(Decode, ReleasePipelineMatchesGolden) {
  auto g = safetensors::load(test::golden_path("decoder/micro_decoder.safetensors"));
  const std::string dir = test::make_temp_dir("decode_pipeline");
  // The release's stat.pt layout, (C, H, W).
  safetensors::save(dir + "/stat.safetensors",
                    {{"mean", g.get("pipe.mean")}, {"var", g.get("pipe.var")}});
  auto dec = decoder_from(test::golden_path("decoder/converted_decoder.safetensors"));
  sampling::DecodePipeline pipe(*dec, sampling::load_latent_stats(dir + "/stat.safetensors", 16, 8),
                                Device::cpu());
  Tensor z = test::nchw_to_tokens(g.get("pipe.z")).cast(DType::F32);
  Tensor px = pipe.decode_pixels(z);
  EXPECT_LE(test::tolerance_ratio(px, g.get("pipe.pixels"), 1e-5, 1e-5), 1.0)
      << test::max_abs_diff(px, g.get("pipe.pixels"));
  // uint8: the same truncation; a float32 rounding difference may move a value across an
  // integer boundary, so allow 1 level on at most 1% of the values.
  std::vector<uint8_t> u8 = pipe.decode_u8(z);
  Tensor ref = g.get("pipe.u8");
  ASSERT_EQ(static_cast<int64_t>(u8.size()), ref.numel());
  int64_t off = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const int d = std::abs(static_cast<int>(u8[i]) - static_cast<int>(ref.data<uint8_t>()[i]));
    ASSERT_LE(d, 1) << "pixel value " << i;
    off += d;
  }
  EXPECT_LE(off, ref.numel() / 100);
  // normalize(): the encode side, (z - mean) / sqrt(var + 1e-5) per (token, channel).
  auto st = sampling::load_latent_stats(dir + "/stat.safetensors", 16, 8);
  Tensor n = pipe.normalize(z);
  for (int64_t i = 0; i < z.numel(); i += 7) {
    const int64_t e = i % (16 * 8);
    const double expect = (z.item(i) - st.mean.item(e)) / std::sqrt(st.var.item(e) + 1e-5);
    EXPECT_NEAR(n.item(i), expect, 1e-5 * (1 + std::abs(expect)));
  }
}

TEST(Decode, UInt8ConversionTruncatesLikeTorch) {
  // clamp(0, 1) * 255 then .to(torch.uint8): truncation toward zero.
  const float px[12] = {-0.5f, 0.0f, 0.00392f, 0.999f, 1.0f, 7.0f,
                        0.5f,  NAN,  0.2f,     0.1f,   0.3f, 0.4f};
  uint8_t out[12];
  sampling::pixels_to_u8(px, 1, 2, out);  // one image, 3 planes of 2x2 -> NHWC
  // plane 0 = px[0..3], plane 1 = px[4..7], plane 2 = px[8..11]; pixel i = (p0[i], p1[i], p2[i]).
  const uint8_t expect[12] = {0, 255, 51, 0, 255, 25, 0, 127, 76, 254, 0, 102};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out[i], expect[i]) << i;
}

TEST(Decode, LatentStatsFiles) {
  const std::string dir = test::make_temp_dir("decode_stats");
  // The cache's layout (T, C); a missing var means 1, as the release.
  Tensor mean = test::randn({6, 4}, 1);
  safetensors::save(dir + "/tc.safetensors", {{"mean", mean}});
  auto st = sampling::load_latent_stats(dir + "/tc.safetensors", 6, 4);
  EXPECT_EQ(test::max_abs_diff(st.mean, mean), 0.0);
  EXPECT_EQ(st.var.item(5), 1.0);
  safetensors::save(dir + "/bad.safetensors", {{"mean", test::randn({5, 4}, 1)}});
  std::string e = error_of([&] { sampling::load_latent_stats(dir + "/bad.safetensors", 6, 4); });
  EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("'mean'"), std::string::npos) << e;
  safetensors::save(dir + "/neg.safetensors", {{"var", Tensor::full({4, 2, 3}, -1.0)}});
  e = error_of([&] { sampling::load_latent_stats(dir + "/neg.safetensors", 6, 4); });
  EXPECT_NE(e.find("variance"), std::string::npos) << e;
  EXPECT_NE(e.find("neg.safetensors"), std::string::npos) << e;
  // An export's statistics (latent_stats.mean / .var, eps in the metadata) load as they are.
  Tensor var = test::rand_uniform({6, 4}, 2, 0.1, 2.0);
  safetensors::save(dir + "/export.safetensors",
                    {{"latent_stats.mean", mean}, {"latent_stats.var", var}, {"x", mean}},
                    {{"latent_stats_eps", "0.001"}});
  st = sampling::load_latent_stats(dir + "/export.safetensors", 6, 4);
  EXPECT_EQ(test::max_abs_diff(st.var, var), 0.0);
  EXPECT_EQ(st.eps, 0.001);
  e = error_of([&] { sampling::load_latent_stats(dir + "/export.safetensors", 8, 4); });
  EXPECT_NE(e.find("export.safetensors"), std::string::npos) << e;
}

TEST(Decode, PngRoundTripAndGrid) {
  const std::string dir = test::make_temp_dir("decode_png");
  const int H = 5, W = 7;
  std::vector<uint8_t> img(H * W * 3 * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i * 37 % 256);
  data::write_png(dir + "/a.png", img.data(), H, W);
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.png.tmp"));
  data::Image back = data::decode_image_file(dir + "/a.png");
  ASSERT_EQ(back.width, W);
  ASSERT_EQ(back.height, H);
  EXPECT_TRUE(std::equal(back.pixels.begin(), back.pixels.end(), img.begin()));
  // 3 images in 2 columns, pad 1: (1 + 2 * 8) x (1 + 2 * 6), image 2 at row 1, column 0.
  data::Image grid = data::make_grid(img.data(), 3, H, W, 2, 1, 9);
  EXPECT_EQ(grid.width, 17);
  EXPECT_EQ(grid.height, 13);
  EXPECT_EQ(grid.row(0)[0], 9);
  const uint8_t* third = img.data() + 2 * H * W * 3;
  EXPECT_EQ(grid.row(1 + 6)[1 * 3], third[0]);
  EXPECT_EQ(grid.row(1 + 6 + 4)[(1 + 6) * 3 + 2], third[(4 * W + 6) * 3 + 2]);
  EXPECT_EQ(grid.row(1 + 6)[(1 + 8) * 3], 9);  // the empty fourth cell
}

TEST(Decode, PsnrAndSsimMatchTheReference) {
  auto g = safetensors::load(test::golden_path("sample/image_metrics.safetensors"));
  Tensor a = g.get("a"), b = g.get("b");
  const int P = static_cast<int>(a.dim(0)), H = static_cast<int>(a.dim(1)),
            W = static_cast<int>(a.dim(2));
  for (int p = 0; p < P; ++p) {
    const uint8_t* pa = a.data<uint8_t>() + static_cast<int64_t>(p) * H * W * 3;
    const uint8_t* pb = b.data<uint8_t>() + static_cast<int64_t>(p) * H * W * 3;
    EXPECT_NEAR(sampling::psnr(pa, pb, H, W), g.get("psnr").item(p), 1e-9) << p;
    EXPECT_NEAR(sampling::ssim(pa, pb, H, W), g.get("ssim").item(p), 1e-9) << p;
  }
}
