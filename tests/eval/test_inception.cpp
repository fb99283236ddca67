// models::InceptionV3 against torch-fidelity's FeatureExtractorInceptionV3 (inception-v3-compat)
// with the same pseudo-random weights (tests/reference/make_inception_golden.py, which also
// proves the .pth -> safetensors converter reproduces them): pool features, unbiased logits and
// the ADM sFID spatial features on images of 64x64 (a batch of two), 256x256, 299x299 and
// 200x300. The weights come from InceptionV3::synthetic_tensors(), are written to a temporary
// safetensors file and loaded with InceptionV3::load, as a user's converted file would be.
// Tolerances: F32 normalized error max |ours - torch| / max |torch| <= 1e-4 per tensor (the
// issue's bound; torch's own float32 vs float64 differ by ~4e-6 here); F64 vs torch in double
// precision <= 1e-12 (only summation order and the batch-norm folding differ: ~1e-15 seen).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/device.h"
#include "io/safetensors.h"
#include "models/inception.h"
#include "ops/precision.h"
#include "support/util.h"

using namespace rae;
using models::InceptionV3;

namespace {

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// The golden's images: pixel i of tag = top byte of splitmix64(key("image:" + tag), i).
Tensor image(const std::string& tag, int64_t n, int64_t h, int64_t w) {
  Tensor t = Tensor::empty({n, h, w, 3}, DType::U8);
  uint8_t* p = t.data<uint8_t>();
  const uint64_t key = fnv1a64("image:" + tag);
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint64_t z = key + (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    p[i] = static_cast<uint8_t>((z ^ (z >> 31)) >> 56);
  }
  return t;
}

struct Case {
  const char* tag;
  int64_t n, h, w;
};
const Case kCases[] = {
    {"s64", 2, 64, 64}, {"s256", 1, 256, 256}, {"s299", 1, 299, 299}, {"s200x300", 1, 200, 300}};

double normalized_error(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  Tensor a = got.to(Device::cpu()), b = want.to(Device::cpu());
  double err = 0, ref = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    err = std::max(err, std::fabs(a.item(i) - b.item(i)));
    ref = std::max(ref, std::fabs(b.item(i)));
  }
  return err / std::max(ref, 1e-30);
}

class InceptionParity : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    golden_ =
        new safetensors::File(safetensors::load(test::golden_path("inception/parity.safetensors")));
    const std::string dir = test::make_temp_dir("inception");
    path_ = new std::string(dir + "/inception-synthetic.safetensors");
    safetensors::save(*path_, InceptionV3::synthetic_tensors(),
                      {{"format", "rae-inception-v3-fid"}});
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(std::filesystem::path(*path_).parent_path());
    delete golden_;
    delete path_;
  }
  static InceptionV3 model() { return InceptionV3::load(*path_); }

  // Compares the three outputs for case c against the golden (suffix "" or "_f64").
  void expect_matches(const models::InceptionFeatures& f, const Case& c, const std::string& sfx,
                      double tol, const std::string& what) {
    const std::string t = c.tag;
    for (const auto& [name, got] : {std::pair<std::string, Tensor>{"pool", f.pool},
                                    {"logits", f.logits},
                                    {"spatial", f.spatial}}) {
      const double e = normalized_error(got, golden_->get(t + "." + name + sfx));
      EXPECT_LE(e, tol) << what << " " << t << " " << name;
      if (std::getenv("RAE_GOLDEN_VERBOSE"))
        std::printf("%-8s %-10s %-8s normalized error %.3e\n", what.c_str(), c.tag, name.c_str(),
                    e);
    }
  }

  static safetensors::File* golden_;
  static std::string* path_;
};
safetensors::File* InceptionParity::golden_ = nullptr;
std::string* InceptionParity::path_ = nullptr;

TEST_F(InceptionParity, SyntheticWeightsMatchTheGeneratorsFormula) {
  auto tensors = InceptionV3::synthetic_tensors();
  for (const char* name :
       {"Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.weight"}) {
    Tensor want = golden_->get(std::string("check.") + name);
    Tensor got = tensors.at(name).view({-1}).narrow(0, 0, want.numel()).clone();
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << name;
  }
  int64_t total = 0;
  for (const auto& kv : tensors) total += kv.second.numel();
  EXPECT_EQ(total, 23885392);  // torch-fidelity's module without num_batches_tracked
}

TEST_F(InceptionParity, CpuF32MatchesTorchFidelity) {
  InceptionV3 m = model();
  for (const Case& c : kCases) {
    auto f = m.forward(image(c.tag, c.n, c.h, c.w));
    EXPECT_EQ(f.pool.shape(), Shape({c.n, 2048}));
    EXPECT_EQ(f.logits.shape(), Shape({c.n, 1008}));
    EXPECT_EQ(f.spatial.shape(), Shape({c.n, 2023}));
    expect_matches(f, c, "", 1e-4, "cpu-f32");
  }
}

TEST_F(InceptionParity, CpuF64MatchesTorchFidelityInDouble) {
  InceptionV3 m = model();
  m.set_dtype(DType::F64);
  const Case& c = kCases[0];
  expect_matches(m.forward(image(c.tag, c.n, c.h, c.w)), c, "_f64", 1e-12, "cpu-f64");
}

TEST_F(InceptionParity, BatchingDoesNotChangeResults) {
  InceptionV3 m = model();
  Tensor imgs = image("s64", 2, 64, 64);
  auto both = m.forward(imgs);
  m.set_batch_size(1);
  auto one = m.forward(imgs);
  EXPECT_LE(normalized_error(one.pool, both.pool), 1e-6);
  EXPECT_LE(normalized_error(one.logits, both.logits), 1e-6);
  EXPECT_LE(normalized_error(one.spatial, both.spatial), 1e-6);
}

TEST_F(InceptionParity, CudaF32MatchesTorchFidelity) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  InceptionV3 m = model();
  m.to(Device::cuda());
  {
    ops::PrecisionGuard fp32(ops::Precision::FP32);
    for (const Case& c : kCases)
      expect_matches(m.forward(image(c.tag, c.n, c.h, c.w)), c, "", 1e-4, "cuda-fp32");
  }
  // TF32 tensor cores (what torch-fidelity gets by default on Ampere+): ~1e-3 expected.
  ops::PrecisionGuard tf32(ops::Precision::TF32);
  const Case& c = kCases[2];
  expect_matches(m.forward(image(c.tag, c.n, c.h, c.w)), c, "", 2e-2, "cuda-tf32");
}

// ---- loading errors name the file and the tensor --------------------------------------------

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(InceptionLoad, MissingTensorNamesFileAndTensor) {
  const std::string dir = test::make_temp_dir("inception-bad");
  const std::string path = dir + "/only-fc.safetensors";
  safetensors::save(path, {{"fc.weight", Tensor::zeros({1008, 2048})}});
  const std::string msg = error_of([&] { InceptionV3::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("Conv2d_1a_3x3.conv.weight"), std::string::npos) << msg;
  std::filesystem::remove_all(dir);
}

TEST(InceptionLoad, WrongShapeAndUnknownNamesAreErrors) {
  auto tensors = InceptionV3::synthetic_tensors();
  auto bad = tensors;
  bad["Mixed_6d.branch1x1.conv.weight"] = Tensor::zeros({192, 768, 3, 3});
  std::string msg = error_of([&] { InceptionV3::from_tensors(bad, "weights.safetensors"); });
  EXPECT_NE(msg.find("weights.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Mixed_6d.branch1x1.conv.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(192, 768, 1, 1)"), std::string::npos) << msg;
  auto extra = tensors;
  extra["AuxLogits.fc.weight"] = Tensor::zeros({1000, 768});
  msg = error_of([&] { InceptionV3::from_tensors(extra, "weights.safetensors"); });
  EXPECT_NE(msg.find("AuxLogits.fc.weight"), std::string::npos) << msg;
  // num_batches_tracked buffers are accepted and ignored.
  auto counters = tensors;
  counters["Conv2d_1a_3x3.bn.num_batches_tracked"] = Tensor::zeros({}, DType::I64);
  EXPECT_EQ(error_of([&] { InceptionV3::from_tensors(counters, "weights.safetensors"); }), "");
}

TEST(InceptionLoad, BadImagesAreRejected) {
  InceptionV3 m = InceptionV3::from_tensors(InceptionV3::synthetic_tensors(), "synthetic");
  std::string msg = error_of([&] { m.forward(Tensor::zeros({1, 8, 8, 3}, DType::F32)); });
  EXPECT_NE(msg.find("u8 (N, H, W, 3)"), std::string::npos) << msg;
  msg = error_of([&] { m.forward(Tensor::zeros({1, 3, 8, 8}, DType::U8)); });
  EXPECT_NE(msg.find("u8 (N, H, W, 3)"), std::string::npos) << msg;
}

}  // namespace
