// The evaluation jobs in one process, with a deterministic stand-in for the network (ToyExtractor:
// features are fixed functions of each image's pixels), so the image paths (npz batches, image
// folders, batching, `stats` and `features` outputs) are checked without InceptionV3; and the
// input checks: every corrupt or mis-shaped .npz is refused with an error naming the file, the
// key and the expected shape.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/image_decode.h"
#include "eval/eval_job.h"
#include "eval/feature_source.h"
#include "eval/reference.h"
#include "io/npz.h"
#include "support/util.h"

namespace rae::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Features from pixels: feature j of a kind averages 8 pixels picked by a stride that depends on
// j, plus a nonlinearity so that the features are not all linear in each other.
class ToyExtractor : public FeatureExtractor {
 public:
  BatchFeatures extract(const Tensor& images) override {
    ++calls;
    const int64_t n = images.dim(0), px = images.numel() / std::max<int64_t>(n, 1);
    auto make = [&](int64_t width, int64_t salt) {
      Tensor t = Tensor::empty({n, width});
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* img = images.data<uint8_t>() + i * px;
        for (int64_t j = 0; j < width; ++j) {
          double s = 0;
          for (int64_t k = 0; k < 8; ++k) s += img[(k * (j + salt) * 131 + j) % px];
          s /= 8 * 255.0;
          t.data<float>()[i * width + j] = static_cast<float>(s + 0.3 * s * s * (j % 3));
        }
      }
      return t;
    };
    return {make(16, 7), make(12, 11), make(10, 13)};
  }
  FeatureWidths widths() const override { return {16, 12, 10}; }
  std::string identity_json() const override { return R"({"name": "toy"})"; }
  int calls = 0;
};

ExtractorFactory toy_factory() {
  return [] { return std::make_unique<ToyExtractor>(); };
}

// n random-ish images (n, h, w, 3): smooth gradients plus noise, seeded.
Tensor make_images(int64_t n, int h, int w, uint64_t seed) {
  Tensor noise = test::rand_uniform({n, h, w, 3}, seed, 0, 60);
  Tensor t = Tensor::empty({n, h, w, 3}, DType::U8);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t c = i % 3, x = (i / 3) % w, y = (i / 3 / w) % h, k = i / (3 * h * w);
    const double v = (x * (k % 5 + 1) + y * (c + 1) * 3 + k * 17) % 190 + noise.data<float>()[i];
    t.data<uint8_t>()[i] = static_cast<uint8_t>(std::min(255.0, v));
  }
  return t;
}

std::string temp(const std::string& tag) {
  return test::make_temp_dir("eval_" + tag);
}

const char* kMetricKeys[] = {"fid", "sfid", "inception_score", "precision", "recall"};

void expect_same_metrics(const json& a, const json& b, double tol) {
  for (const char* k : kMetricKeys)
    EXPECT_NEAR(a.at(k).get<double>(), b.at(k).get<double>(), tol) << k;
}

TEST(EvalJob, ImagesAndTheirFeaturesGiveTheSameMetrics) {
  const std::string dir = temp("images_vs_features");
  Tensor sample_images = make_images(40, 12, 10, 1);
  npz::save(dir + "/samples.npz", {{"arr_0", sample_images}});
  npz::save(dir + "/ref.npz", {{"arr_0", make_images(30, 12, 10, 2)}});
  EvalJobOptions o;
  o.samples = dir + "/samples.npz";
  o.ref = dir + "/ref.npz";
  o.out = dir + "/metrics_images.json";
  o.batch = 7;
  o.progress_seconds = 1e9;
  json from_images = run_eval(o, toy_factory(), nullptr);
  EXPECT_EQ(from_images["counts"]["samples"], 40);
  EXPECT_EQ(from_images["inputs"]["extractor"]["name"], "toy");
  EXPECT_TRUE(fs::exists(o.out));
  // Dump both inputs' features, then evaluate the features: the same numbers.
  EvalJobOptions f = o;
  f.out = dir + "/samples_features.npz";
  run_features(f, toy_factory(), nullptr);
  f.samples = o.ref;
  f.out = dir + "/ref_features.npz";
  run_features(f, toy_factory(), nullptr);
  EvalJobOptions e = o;
  e.samples = dir + "/samples_features.npz";
  e.ref = dir + "/ref_features.npz";
  e.out = dir + "/metrics_features.json";
  e.batch = 50;                                                   // a different batching too
  json from_features = run_eval(e, ExtractorFactory{}, nullptr);  // no extractor needed
  expect_same_metrics(from_images, from_features, 1e-12);
  EXPECT_TRUE(from_features["inputs"]["extractor"].is_null());
  // In-memory images (what a reconstruction job hands over) give the same numbers too.
  json from_memory =
      evaluate_samples(*tensor_source(sample_images, "reconstructions"), o, toy_factory(), nullptr);
  expect_same_metrics(from_images, from_memory, 0);
  EXPECT_EQ(from_memory["inputs"]["samples"]["name"], "reconstructions");
}

TEST(EvalJob, ImageFolderMatchesTheSameImagesInAnNpz) {
  const std::string dir = temp("folder");
  Tensor imgs = make_images(9, 8, 6, 3);
  fs::create_directories(dir + "/imgs/sub");
  for (int64_t i = 0; i < 9; ++i) {
    data::Image im = data::Image::make(6, 8);
    std::memcpy(im.pixels.data(), imgs.data<uint8_t>() + i * 8 * 6 * 3, 8 * 6 * 3);
    // Sorted by relative path: "a0.png" < ... < "sub/..." keeps index order.
    char name[32];
    std::snprintf(name, sizeof name, i < 5 ? "a%d.png" : "sub/b%d.png", static_cast<int>(i));
    data::write_file_bytes(dir + "/imgs/" + name, data::encode_png(im));
  }
  npz::save(dir + "/imgs.npz", {{"arr_0", imgs}});
  EvalJobOptions o;
  o.images_dir = dir + "/imgs";
  o.image_size = 0;  // as decoded (PNG is lossless)
  o.out = dir + "/folder_features.npz";
  o.batch = 4;
  o.progress_seconds = 1e9;
  run_features(o, toy_factory(), nullptr);
  o.images_dir.clear();
  o.samples = dir + "/imgs.npz";
  o.out = dir + "/npz_features.npz";
  run_features(o, toy_factory(), nullptr);
  npz::Reader a(dir + "/folder_features.npz"), b(dir + "/npz_features.npz");
  for (const char* k : {"pool", "spatial", "logits"})
    EXPECT_EQ(test::max_abs_diff(a.read(k), b.read(k)), 0.0) << k;
}

TEST(EvalJob, StatsWritesAnAdmLayoutReference) {
  const std::string dir = temp("stats");
  Tensor imgs = make_images(25, 10, 10, 4);
  npz::save(dir + "/ref_images.npz", {{"arr_0", imgs}});
  EvalJobOptions o;
  o.samples = dir + "/ref_images.npz";
  o.out = dir + "/ref_adm.npz";
  o.ref_images = 10;
  o.batch = 6;
  o.progress_seconds = 1e9;
  run_stats(o, toy_factory(), nullptr);
  npz::Reader r(o.out);
  ASSERT_TRUE(r.contains("arr_0"));
  Tensor arr = r.read("arr_0");
  ASSERT_EQ(arr.shape(), (Shape{10, 10, 10, 3}));
  // arr_0 holds images i * 25 / 10 of the source.
  const int64_t px = 10 * 10 * 3;
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_EQ(
        std::memcmp(arr.data<uint8_t>() + i * px, imgs.data<uint8_t>() + (i * 25 / 10) * px, px), 0)
        << i;
  Reference ref = open_reference(o.out);
  ASSERT_TRUE(ref.stats.has_value());
  EXPECT_EQ(ref.stats->pool.dim, 16);
  EXPECT_EQ(ref.stats->spatial.dim, 12);
  // Evaluating against the stats file equals evaluating against all 25 images for FID/sFID.
  npz::save(dir + "/samples.npz", {{"arr_0", make_images(20, 10, 10, 5)}});
  EvalJobOptions e;
  e.samples = dir + "/samples.npz";
  e.ref = o.out;
  e.batch = 8;
  e.progress_seconds = 1e9;
  json with_stats = run_eval(e, toy_factory(), nullptr);
  e.ref = dir + "/ref_images.npz";
  json with_images = run_eval(e, toy_factory(), nullptr);
  EXPECT_NEAR(with_stats["fid"].get<double>(), with_images["fid"].get<double>(), 1e-10);
  EXPECT_NEAR(with_stats["sfid"].get<double>(), with_images["sfid"].get<double>(), 1e-10);
  EXPECT_EQ(with_stats["counts"]["reference_vectors"], 10);
  EXPECT_TRUE(with_stats["settings"]["reference_statistics_from_file"].get<bool>());
}

// ---- input checks ----------------------------------------------------------------------------

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR_HAS(fn, ...)                                                               \
  do {                                                                                          \
    const std::string msg_ = error_of(fn);                                                      \
    for (const char* part : {__VA_ARGS__})                                                      \
      EXPECT_NE(msg_.find(part), std::string::npos) << "missing '" << part << "' in: " << msg_; \
  } while (0)

TEST(EvalInputs, MisShapedImagesNameTheFileAndTheExpectedShape) {
  const std::string dir = temp("bad_images");
  struct Case {
    const char* name;
    Tensor arr;
  } cases[] = {
      {"float_images.npz", Tensor::zeros({4, 8, 8, 3}, DType::F32)},  // wrong dtype
      {"rank3.npz", Tensor::zeros({4, 8, 8}, DType::U8)},             // wrong rank
      {"rgba.npz", Tensor::zeros({4, 8, 8, 4}, DType::U8)},           // wrong last dim
      {"channels_first.npz", Tensor::zeros({4, 3, 8, 8}, DType::U8)},
  };
  for (auto& c : cases) {
    const std::string p = dir + "/" + c.name;
    npz::save(p, {{"arr_0", c.arr}});
    EXPECT_ERROR_HAS([&] { open_npz_source(p, "samples"); }, p.c_str(), "'arr_0'",
                     "expected uint8 images (N, H, W, 3)");
  }
}

TEST(EvalInputs, MisShapedFeaturesAreRefused) {
  const std::string dir = temp("bad_features");
  const std::string p1 = dir + "/pool_rank3.npz";
  npz::save(p1, {{"pool", Tensor::zeros({5, 4, 2})}});
  EXPECT_ERROR_HAS([&] { open_npz_source(p1, "samples"); }, p1.c_str(), "'pool'",
                   "expected float features (N, D)");
  const std::string p2 = dir + "/int_pool.npz";
  npz::save(p2, {{"pool", Tensor::zeros({5, 4}, DType::I32)}});
  EXPECT_ERROR_HAS([&] { open_npz_source(p2, "samples"); }, p2.c_str(), "'pool'", "found <i4");
  const std::string p3 = dir + "/rows_differ.npz";
  npz::save(p3, {{"pool", Tensor::zeros({5, 4})},
                 {"spatial", Tensor::zeros({6, 3})},
                 {"logits", Tensor::zeros({5, 2})}});
  EXPECT_ERROR_HAS([&] { open_npz_source(p3, "samples"); }, p3.c_str(), "'spatial'",
                   "expected float features (5, D)");
  const std::string p4 = dir + "/no_logits.npz";
  npz::save(p4, {{"pool", Tensor::zeros({5, 4})}, {"spatial", Tensor::zeros({5, 3})}});
  EXPECT_ERROR_HAS([&] { open_npz_source(p4, "samples"); }, p4.c_str(), "no 'logits'");
  const std::string p5 = dir + "/nothing.npz";
  npz::save(p5, {{"labels", Tensor::zeros({5}, DType::I64)}});
  EXPECT_ERROR_HAS([&] { open_npz_source(p5, "samples"); }, p5.c_str(), "neither 'arr_0'",
                   "(N, H, W, 3)");
}

TEST(EvalInputs, FeatureWidthsMustMatchTheReference) {
  const std::string dir = temp("widths");
  npz::save(dir + "/s.npz", {{"pool", test::randn({20, 15}, 1)},
                             {"spatial", test::randn({20, 12}, 2)},
                             {"logits", test::randn({20, 10}, 3)}});
  npz::save(dir + "/r.npz",
            {{"pool", test::randn({20, 16}, 4)}, {"spatial", test::randn({20, 12}, 5)}});
  EvalJobOptions o;
  o.samples = dir + "/s.npz";
  o.ref = dir + "/r.npz";
  EXPECT_ERROR_HAS([&] { run_eval(o, ExtractorFactory{}, nullptr); }, o.samples.c_str(), "(N, 15)",
                   o.ref.c_str(), "expects (N, 16)");
}

TEST(EvalInputs, MisShapedReferenceStatisticsAreRefused) {
  const std::string dir = temp("bad_ref");
  auto ref_with = [&](const std::string& name, const Tensor& sigma) {
    const std::string p = dir + "/" + name;
    npz::save(p, {{"mu", Tensor::zeros({8}, DType::F64)},
                  {"sigma", sigma},
                  {"mu_s", Tensor::zeros({5}, DType::F64)},
                  {"sigma_s", Tensor::zeros({5, 5}, DType::F64)},
                  {"arr_0", Tensor::zeros({3, 4, 4, 3}, DType::U8)}});
    return p;
  };
  const std::string p1 = ref_with("sigma_not_square.npz", Tensor::zeros({8, 7}, DType::F64));
  EXPECT_ERROR_HAS([&] { open_reference(p1); }, p1.c_str(), "'sigma'", "expected float (8, 8)");
  const std::string p2 = ref_with("sigma_u8.npz", Tensor::zeros({8, 8}, DType::U8));
  EXPECT_ERROR_HAS([&] { open_reference(p2); }, p2.c_str(), "'sigma'", "found |u1");
  const std::string p3 = dir + "/no_vectors.npz";
  npz::save(p3, {{"mu", Tensor::zeros({8}, DType::F64)},
                 {"sigma", Tensor::zeros({8, 8}, DType::F64)},
                 {"mu_s", Tensor::zeros({5}, DType::F64)},
                 {"sigma_s", Tensor::zeros({5, 5}, DType::F64)}});
  EXPECT_ERROR_HAS([&] { open_reference(p3); }, p3.c_str(), "neither 'arr_0'");
  const std::string p4 = dir + "/no_mu_s.npz";
  npz::save(p4, {{"mu", Tensor::zeros({8}, DType::F64)},
                 {"sigma", Tensor::zeros({8, 8}, DType::F64)},
                 {"arr_0", Tensor::zeros({3, 4, 4, 3}, DType::U8)}});
  EXPECT_ERROR_HAS([&] { open_reference(p4); }, p4.c_str(), "no key 'mu_s'");
}

TEST(EvalInputs, TruncatedAndCorruptFilesNameTheFile) {
  const std::string dir = temp("corrupt");
  const std::string good = dir + "/good.npz";
  npz::save(good, {{"arr_0", make_images(6, 8, 8, 9)}});
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t keep : {bytes.size() - 10, bytes.size() / 2, size_t{30}}) {
    const std::string p = dir + "/truncated_" + std::to_string(keep) + ".npz";
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    EXPECT_ERROR_HAS([&] { open_npz_source(p, "samples"); }, p.c_str());
  }
  const std::string garbage = dir + "/garbage.npz";
  std::ofstream(garbage, std::ios::binary) << std::string(4096, 'x');
  EXPECT_ERROR_HAS([&] { open_npz_source(garbage, "samples"); }, garbage.c_str());
  EXPECT_ERROR_HAS([&] { open_npz_source(dir + "/missing.npz", "samples"); }, "missing.npz",
                   "does not exist");
}

TEST(EvalInputs, FolderImagesOfDifferentSizesNeedImageSize) {
  const std::string dir = temp("mixed_sizes");
  fs::create_directories(dir + "/imgs");
  data::write_file_bytes(dir + "/imgs/a.png", data::encode_png(data::Image::make(8, 6)));
  data::write_file_bytes(dir + "/imgs/b.png", data::encode_png(data::Image::make(7, 6)));
  EvalJobOptions o;
  o.images_dir = dir + "/imgs";
  o.out = dir + "/f.npz";
  o.progress_seconds = 1e9;
  EXPECT_ERROR_HAS([&] { run_features(o, toy_factory(), nullptr); }, "'b.png' is 7x6",
                   "'a.png' is 8x6", "--image-size");
  o.image_size = 4;  // the ADM center crop makes them one size
  run_features(o, toy_factory(), nullptr);
  EXPECT_EQ(npz::Reader(o.out).info("pool").shape, (Shape{2, 16}));
}

TEST(EvalInputs, NonFiniteFeaturesNameTheRow) {
  const std::string dir = temp("nan");
  Tensor pool = test::randn({12, 4}, 1);
  pool.data<float>()[7 * 4 + 2] = std::nanf("");
  npz::save(
      dir + "/s.npz",
      {{"pool", pool}, {"spatial", test::randn({12, 3}, 2)}, {"logits", test::randn({12, 5}, 3)}});
  npz::save(dir + "/r.npz",
            {{"pool", test::randn({12, 4}, 4)}, {"spatial", test::randn({12, 3}, 5)}});
  EvalJobOptions o;
  o.samples = dir + "/s.npz";
  o.ref = dir + "/r.npz";
  o.batch = 5;
  EXPECT_ERROR_HAS([&] { run_eval(o, ExtractorFactory{}, nullptr); }, "s.npz", "pool feature 2",
                   "row 7", "not finite");
}

}  // namespace
}  // namespace rae::eval
