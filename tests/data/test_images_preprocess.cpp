// The image pipeline against the RAE release's reference (PIL + PyTorch), goldens written by
// tests/reference/make_preprocess_goldens.py from PIL-written JPEG (RGB, gray, CMYK) and PNG files.
// Tolerances:
//  - decoding: exact (0 levels) expected; 1 level is allowed for libjpeg-turbo versions that
//    differ between Pillow's bundled copy and the system one (same ISLOW IDCT and fancy
//    upsampling; measured 0 with Pillow 13 and libjpeg-turbo 2.1.5).
//  - center crop (PIL BOX/BICUBIC, 8-bit fixed point): exact reimplementation, 0 levels expected,
//    <= 1 level allowed for the decoding reason above.
//  - encoder input (bicubic resize + normalization in float32), computed from the reference crop:
//    1e-5 absolute (float rounding order differs from PyTorch's kernels; values are O(1);
//    measured 3.7e-6).
//  - position-embedding interpolation (float32, with and without antialias): 1e-5 absolute.
#include <gtest/gtest.h>

#include <sstream>

#include "data/image_decode.h"
#include "data/image_preprocess.h"
#include "io/safetensors.h"
#include "support/util.h"

using namespace rae;
using namespace rae::data;

namespace {

const std::array<float, 3> kMean = {0.485f, 0.456f, 0.406f};
const std::array<float, 3> kStd = {0.229f, 0.224f, 0.225f};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

int max_level_diff(const Image& img, const Tensor& ref) {
  EXPECT_EQ(ref.dim(0), img.height);
  EXPECT_EQ(ref.dim(1), img.width);
  EXPECT_EQ(ref.dim(2), 3);
  const uint8_t* r = ref.data<uint8_t>();
  int worst = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i)
    worst = std::max(worst, std::abs(int(img.pixels[i]) - int(r[i])));
  return worst;
}

Image image_from(const Tensor& t) {
  Image img = Image::make(static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)), 3);
  std::copy_n(t.data<uint8_t>(), img.pixels.size(), img.pixels.data());
  return img;
}

double max_diff(const std::vector<float>& a, const Tensor& ref) {
  EXPECT_EQ(static_cast<int64_t>(a.size()), ref.numel());
  double worst = 0;
  const float* r = ref.data<float>();
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - r[i]));
  return worst;
}

struct Golden {
  safetensors::File file = safetensors::load(test::golden_path("images/preprocess.safetensors"));
  std::vector<std::string> names = split_commas(file.metadata.at("files"));
  int crop = std::stoi(file.metadata.at("crop"));
  int enc = std::stoi(file.metadata.at("enc"));
};

}  // namespace

TEST(ImagesPreprocess, DecodeMatchesPil) {
  Golden g;
  ASSERT_EQ(g.names.size(), 5u);
  for (size_t i = 0; i < g.names.size(); ++i) {
    Image img = decode_image_file(test::golden_path("images/" + g.names[i]));
    EXPECT_LE(max_level_diff(img, g.file.get(std::to_string(i) + ".decoded")), 1) << g.names[i];
  }
}

TEST(ImagesPreprocess, CenterCropMatchesPil) {
  Golden g;
  for (size_t i = 0; i < g.names.size(); ++i) {
    // From the reference decode, so only the resampling is compared.
    Image decoded = image_from(g.file.get(std::to_string(i) + ".decoded"));
    Image crop = center_crop_arr(decoded, g.crop);
    EXPECT_EQ(max_level_diff(crop, g.file.get(std::to_string(i) + ".crop")), 0) << g.names[i];
    // And end to end from the file.
    Image crop2 =
        center_crop_arr(decode_image_file(test::golden_path("images/" + g.names[i])), g.crop);
    EXPECT_LE(max_level_diff(crop2, g.file.get(std::to_string(i) + ".crop")), 1) << g.names[i];
  }
}

TEST(ImagesPreprocess, EncoderInputMatchesTorch) {
  Golden g;
  for (size_t i = 0; i < g.names.size(); ++i) {
    Image crop = image_from(g.file.get(std::to_string(i) + ".crop"));
    std::vector<float> x = to_encoder_input(crop, g.enc, kMean, kStd);
    EXPECT_LT(max_diff(x, g.file.get(std::to_string(i) + ".enc")), 1e-5) << g.names[i];
    std::vector<float> xf = to_encoder_input(flip_horizontal(crop), g.enc, kMean, kStd);
    EXPECT_LT(max_diff(xf, g.file.get(std::to_string(i) + ".enc_flip")), 1e-5) << g.names[i];
  }
}

TEST(ImagesPreprocess, PositionInterpolationMatchesTorch) {
  Golden g;
  Tensor src = g.file.get("pos.src");  // (8, 7, 7)
  std::vector<float> s(src.data<float>(), src.data<float>() + src.numel());
  auto run = [&](int out, double scale, bool aa) {
    InterpWeights w = torch_bicubic_weights(7, out, scale, aa);
    return resample_planar(s, 8, 7, 7, w, w);
  };
  EXPECT_LT(max_diff(run(4, 7 / 4.1, true), g.file.get("pos.aa_down")), 1e-5);
  EXPECT_LT(max_diff(run(9, 7 / 9.1, true), g.file.get("pos.aa_up")), 1e-5);
  EXPECT_LT(max_diff(run(9, 7.0 / 9, false), g.file.get("pos.size_up")), 1e-5);
  EXPECT_LT(max_diff(run(4, 7.0 / 4, false), g.file.get("pos.size_down")), 1e-5);
}
