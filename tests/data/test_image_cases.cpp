// Image decoding against PIL's defaults, case by case (tests/goldens/images/cases/cases.json,
// written by tests/reference/make_image_cases_goldens.py): every PNG color type and bit depth
// decodes to PIL's convert("RGB") bytes (16-bit grayscale clipped to 255, as PIL's I;16), and
// damaged files are errors naming the file exactly where PIL raises (truncated data, broken
// streams, bad header CRCs, decompression bombs), while what PIL decodes (trailing junk, a
// missing PNG trailer, recoverable JPEG corruption) decodes here too. PNG pixels must be
// identical; JPEG pixels within 1 level (Pillow's bundled libjpeg-turbo vs the system one, see
// test_images_preprocess.cpp).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/image_decode.h"
#include "support/util.h"

using namespace rae;
using namespace rae::data;

namespace {

std::string case_path(const std::string& name) {
  return test::golden_path("images/cases/" + name);
}

nlohmann::json cases() {
  std::ifstream in(case_path("cases.json"));
  return nlohmann::json::parse(in).at("cases");
}

std::string error_of(const std::string& path) {
  try {
    decode_image_file(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

TEST(ImageCases, DecodeAsPilDoes) {
  int checked = 0;
  for (const auto& c : cases()) {
    const std::string name = c.at("file"), path = case_path(name);
    const bool rae_errors = c.contains("rae") && c["rae"].get<std::string>().rfind("error", 0) == 0;
    if (c.at("pil") == "ok" && !rae_errors) {
      Image img;
      ASSERT_NO_THROW(img = decode_image_file(path)) << name << ": " << error_of(path);
      ASSERT_EQ(img.width, c.at("size")[0].get<int>()) << name;
      ASSERT_EQ(img.height, c.at("size")[1].get<int>()) << name;
      if (c.contains("rgb")) {
        std::ifstream in(case_path(c["rgb"]), std::ios::binary);
        std::vector<uint8_t> want((std::istreambuf_iterator<char>(in)), {});
        ASSERT_EQ(want.size(), img.pixels.size()) << name;
        const int tol = name.find(".png") != std::string::npos ? 0 : 1;
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_LE(std::abs(int(img.pixels[i]) - int(want[i])), tol)
              << name << " byte " << i << " (PIL mode " << c.value("pil_mode", "") << ")";
      }
    } else {
      const std::string e = error_of(path);
      EXPECT_NE(e.find(name), std::string::npos)
          << name << ": expected an error naming the file (PIL: " << c.value("pil_error", "")
          << "), got '" << e << "'";
      if (c.value("pil_error", "").find("truncated") != std::string::npos) {
        EXPECT_NE(e.find("truncated"), std::string::npos) << name << ": " << e;
      }
      if (name.find("bomb") != std::string::npos) {
        EXPECT_NE(e.find("exceeds the limit of 89478485 pixels"), std::string::npos) << e;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 36);
}

TEST(ImageCases, SixteenBitGrayClipsAsPilI16) {
  // Values 0, 65535, 32767, 255, 1, 255, 256, 300 first: PIL's I;16 -> RGB clips to 255.
  Image img = decode_image_file(case_path("gray16.png"));
  const int want[8] = {0, 255, 255, 255, 1, 255, 255, 255};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(img.pixels[3 * i], want[i]) << i;
  Image rgb16 = decode_image_file(case_path("rgb16.png"));  // high byte: 256 -> 1, 300 -> 1
  EXPECT_EQ(rgb16.pixels[0], 0);
}

TEST(ImageCases, BombIsRefusedFromTheHeaderBeforeAllocating) {
  // A small file claiming 20000 x 20000: refused before a 1.2 GB pixel buffer exists.
  const long before = max_rss_kib();
  for (const char* name : {"jpeg_bomb.jpg", "png_bomb.png"}) {
    const std::string e = error_of(case_path(name));
    EXPECT_NE(e.find("image size 20000x20000 (400000000 pixels) exceeds the limit"),
              std::string::npos)
        << e;
  }
  EXPECT_LT(max_rss_kib() - before, 64 * 1024) << "KiB of peak RSS added";
}

TEST(ImageCases, PixelLimitIsConfigurable) {
  const int64_t saved = max_image_pixels();
  set_max_image_pixels(64 * 48 - 1);  // jpeg_ok.jpg is 64 x 48
  EXPECT_NE(error_of(case_path("jpeg_ok.jpg")).find("exceeds the limit of 3071 pixels"),
            std::string::npos);
  EXPECT_EQ(error_of(case_path("rgb8.png")), "");  // 7 x 5 = 35 pixels is fine
  set_max_image_pixels(64 * 48);
  EXPECT_EQ(error_of(case_path("jpeg_ok.jpg")), "");
  set_max_image_pixels(0);  // no limit
  EXPECT_EQ(error_of(case_path("jpeg_ok.jpg")), "");
  EXPECT_THROW(set_max_image_pixels(-1), Error);
  set_max_image_pixels(saved);
}
