// Image decoding paths, ImageFolder listing and the procedural dataset generator.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/image_preprocess.h"
#include "datasets/procedural.h"
#include "support/util.h"

using namespace rae;
using namespace rae::data;
namespace fs = std::filesystem;

TEST(Images, FormatByMagicBytesNotExtension) {
  Image img = datasets::render_procedural(3, 0, 40, 30, 0);
  std::vector<uint8_t> png = encode_png(img), jpg = encode_jpeg(img, 95);
  EXPECT_EQ(detect_image_format(png.data(), png.size()), ImageFormat::Png);
  EXPECT_EQ(detect_image_format(jpg.data(), jpg.size()), ImageFormat::Jpeg);
  std::string dir = test::make_temp_dir("magic");
  write_file_bytes(dir + "/fake.JPEG", png);  // a PNG named .JPEG
  Image back = decode_image_file(dir + "/fake.JPEG");
  EXPECT_EQ(back.pixels, img.pixels);  // PNG is lossless
  std::vector<uint8_t> junk = {'G', 'I', 'F', '8', '9', 'a', 0, 0};
  write_file_bytes(dir + "/x.JPEG", junk);
  try {
    decode_image_file(dir + "/x.JPEG");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.JPEG"), std::string::npos);
  }
}

TEST(Images, JpegGrayAndCmykDecodeToRgb) {
  Image img = datasets::render_procedural(5, 2, 48, 40, 0);
  for (JpegColor color : {JpegColor::Rgb, JpegColor::Gray, JpegColor::Cmyk}) {
    std::vector<uint8_t> bytes = encode_jpeg(img, 95, color);
    Image back = decode_image(bytes.data(), bytes.size(), "mem");
    ASSERT_EQ(back.width, 48);
    ASSERT_EQ(back.height, 40);
    ASSERT_EQ(back.channels, 3);
    double err = 0;
    for (size_t i = 0; i < back.pixels.size(); i += 3) {
      if (color == JpegColor::Gray) {
        EXPECT_EQ(back.pixels[i], back.pixels[i + 1]);
        EXPECT_EQ(back.pixels[i], back.pixels[i + 2]);
      } else {
        for (int c = 0; c < 3; ++c)
          err += std::abs(int(back.pixels[i + c]) - int(img.pixels[i + c]));
      }
    }
    if (color != JpegColor::Gray) {
      EXPECT_LT(err / back.pixels.size(), 6.0);  // lossy, but the colours survive
    }
  }
}

TEST(Images, TruncatedJpegIsAnErrorNamingTheFile) {
  Image img = datasets::render_procedural(1, 1, 32, 32, 0);
  std::vector<uint8_t> bytes = encode_jpeg(img, 90);
  bytes.resize(20);
  EXPECT_THROW(decode_image(bytes.data(), bytes.size(), "short.jpg"), Error);
}

TEST(Images, CenterCropShapesAndFlip) {
  Image img = datasets::render_procedural(2, 0, 300, 130, 0);
  Image crop = center_crop_arr(img, 64);
  EXPECT_EQ(crop.width, 64);
  EXPECT_EQ(crop.height, 64);
  Image f = flip_horizontal(flip_horizontal(crop));
  EXPECT_EQ(f.pixels, crop.pixels);
  std::vector<float> x = to_encoder_input(crop, 56, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f});
  EXPECT_EQ(x.size(), 3u * 56 * 56);
  for (float v : x) EXPECT_TRUE(v > -1.2f && v < 1.2f);
}

TEST(Images, ProceduralDatasetAndImageFolder) {
  std::string dir = test::make_temp_dir("ds");
  datasets::ProceduralSpec spec;
  spec.classes = 4;
  spec.per_class = 12;
  spec.size = 32;
  datasets::ProceduralReport rep = datasets::write_procedural_dataset(dir, spec);
  EXPECT_EQ(rep.total(), 48);
  EXPECT_EQ(rep.png_named_jpeg, 1);
  EXPECT_GT(rep.gray_jpeg, 0);
  EXPECT_GT(rep.cmyk_jpeg, 0);
  EXPECT_GT(rep.png, 0);
  std::ofstream(dir + "/train/n00000001/notes.txt") << "x";  // non-images are not listed
  ImageFolderList list = list_image_folder(dir, "train");
  ASSERT_EQ(list.classes.size(), 4u);
  EXPECT_EQ(list.classes[2], "n00000002");
  ASSERT_EQ(list.entries.size(), 48u);
  for (size_t i = 0; i < list.entries.size(); ++i) {
    EXPECT_EQ(list.entries[i].label, static_cast<int>(i / 12));
    EXPECT_EQ(list.entries[i].relpath.substr(0, 9), list.classes[list.entries[i].label]);
    if (i > 0 && list.entries[i].label == list.entries[i - 1].label) {
      EXPECT_LT(list.entries[i - 1].relpath, list.entries[i].relpath);
    }
    Image img = decode_image_file(list.entries[i].path);
    EXPECT_EQ(img.channels, 3);
  }
  // Deterministic bytes: a second run writes identical files.
  std::string dir2 = test::make_temp_dir("ds2");
  datasets::write_procedural_dataset(dir2, spec);
  EXPECT_EQ(read_file_bytes(list.entries[7].path),
            read_file_bytes(dir2 + "/train/" + list.entries[7].relpath));
}

TEST(Images, FlatValidationSplitWithLabelFile) {
  std::string dir = test::make_temp_dir("val");
  for (const char* c : {"n02", "n01", "n03"}) fs::create_directories(dir + "/train/" + c);
  fs::create_directories(dir + "/val");
  Image img = datasets::render_procedural(0, 0, 16, 16, 0);
  std::ofstream labels(dir + "/labels.txt");
  const char* files[] = {"v3.JPEG", "v1.JPEG", "v2.JPEG"};
  const char* cls[] = {"n03", "n02", "1"};  // class name or index
  for (int i = 0; i < 3; ++i) {
    write_file_bytes(dir + "/val/" + files[i], encode_jpeg(img, 90));
    labels << files[i] << " " << cls[i] << "\n";
  }
  labels.close();
  ImageFolderList list = list_image_folder(dir, "val", dir + "/labels.txt");
  ASSERT_EQ(list.entries.size(), 3u);
  EXPECT_EQ(list.classes, (std::vector<std::string>{"n01", "n02", "n03"}));
  EXPECT_EQ(list.entries[0].relpath, "v1.JPEG");
  EXPECT_EQ(list.entries[0].label, 1);
  EXPECT_EQ(list.entries[1].label, 1);
  EXPECT_EQ(list.entries[2].label, 2);
  EXPECT_THROW(list_image_folder(dir, "val"), Error);  // flat without a label file
}

TEST(Images, NestedFilesFollowTorchvisionOrder) {
  // sorted(os.walk()) then sorted names: a folder's own files before its sub-folders' files.
  std::string dir = test::make_temp_dir("nested");
  fs::create_directories(dir + "/train/c0/sub");
  std::vector<uint8_t> jpg = encode_jpeg(datasets::render_procedural(0, 0, 16, 16, 0), 90);
  for (const char* f : {"c0/z.JPEG", "c0/sub/a.JPEG", "c0/b.png"})
    write_file_bytes(dir + "/train/" + f, jpg);
  ImageFolderList list = list_image_folder(dir, "train");
  ASSERT_EQ(list.entries.size(), 3u);
  EXPECT_EQ(list.entries[0].relpath, "c0/b.png");
  EXPECT_EQ(list.entries[1].relpath, "c0/z.JPEG");
  EXPECT_EQ(list.entries[2].relpath, "c0/sub/a.JPEG");
}
