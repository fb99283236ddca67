// train.precision (fp32 | tf32 | bf16): config validation, the CPU trainer's handling, the
// activation dtype of the arena, and the op dispatch checks that let CUDA ops mix F32 and BF16
// arguments (bf16 activations with F32 weights/gradients) while CPU ops stay strict.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "core/device.h"
#include "nn/arena.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/op_checks.h"
#include "ops/precision.h"
#include "support/util.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace rae;

namespace {

using test::error_of;

// A tensor that claims to live on cuda:0 but wraps host memory: enough for the argument checks
// (they never touch the data). Only valid in calls that stop before the CUDA kernels.
Tensor fake_cuda(const Shape& shape, DType dtype) {
  auto buf = std::make_shared<std::vector<char>>(shape.numel() * dtype_size(dtype) + 64);
  return Tensor::from_blob(buf->data(), shape, dtype, Device::cuda(0), buf);
}

}  // namespace

TEST(TrainPrecision, ConfigDefaultsAndValues) {
  EXPECT_EQ(train::parse_train_config("", {}).precision, "fp32");
  EXPECT_EQ(train::parse_train_config("", {"--train.precision=tf32"}).precision, "tf32");
  auto c = train::parse_train_config("", {"--train.precision=bf16", "--train.device=cuda"});
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_NE(c.to_ini().find("precision = bf16"), std::string::npos);
}

TEST(TrainPrecision, ConfigErrorsNameTheKey) {
  std::string e = error_of([] { train::parse_train_config("", {"--train.precision=fp16"}); });
  EXPECT_NE(e.find("train.precision"), std::string::npos) << e;
  EXPECT_NE(e.find("fp16"), std::string::npos) << e;
  // BF16 activations are a CUDA feature: on the CPU the key is rejected before any work.
  e = error_of([] { train::parse_train_config("", {"--train.precision=bf16"}); });
  EXPECT_NE(e.find("train.precision"), std::string::npos) << e;
  EXPECT_NE(e.find("cuda"), std::string::npos) << e;
  train::TrainConfig c;
  c.precision = "BF16";
  e = error_of([&] { c.validate(); });
  EXPECT_NE(e.find("train.precision"), std::string::npos) << e;
}

// On the CPU tf32 reads as fp32 (the CPU ops compute in F32): identical losses.
TEST(TrainPrecision, CpuTf32TrainsAsFp32) {
  auto losses = [](const std::string& precision) {
    train::TrainConfig c;
    c.preset = "DiTDH-micro";
    c.global_batch_size = 4;
    c.lr = 1e-3;
    c.steps = 2;
    c.progress = false;
    c.precision = precision;
    train::SyntheticStream data(16, 4, 8, 5);
    train::Trainer tr(c, data, "");
    std::vector<double> l;
    for (int i = 0; i < 2; ++i) l.push_back(tr.step().loss);
    return l;
  };
  EXPECT_EQ(losses("fp32"), losses("tf32"));
}

TEST(TrainPrecision, CpuTrainerRejectsBf16) {
  train::TrainConfig c;  // built directly, bypassing validate(): the trainer checks too
  c.preset = "DiTDH-micro";
  c.global_batch_size = 4;
  c.precision = "bf16";
  train::SyntheticStream data(16, 4, 8, 5);
  std::string e = error_of([&] { train::Trainer tr(c, data, ""); });
  EXPECT_NE(e.find("bf16"), std::string::npos) << e;
}

TEST(TrainPrecision, ArenaActivationDtype) {
  nn::Arena f32;
  EXPECT_EQ(f32.empty({2, 3}).dtype(), DType::F32);
  nn::Arena bf16(Device::cpu(), size_t(1) << 20, DType::BF16);
  EXPECT_EQ(bf16.activation_dtype(), DType::BF16);
  EXPECT_EQ(bf16.empty({2, 3}).dtype(), DType::BF16);
  EXPECT_EQ(bf16.zeros({5}).dtype(), DType::BF16);
  EXPECT_EQ(bf16.empty({4}, DType::F32).dtype(), DType::F32);  // statistics stay F32
}

TEST(OpChecks, CpuRejectsMixedDtypes) {
  Tensor x = Tensor::zeros({2, 3}, DType::F32), w = Tensor::zeros({4, 3}, DType::F64);
  Tensor out = Tensor::zeros({2, 4}, DType::F32);
  std::string e = error_of([&] { ops::linear_forward(out, x, w, Tensor()); });
  EXPECT_NE(e.find("'w' has dtype f64"), std::string::npos) << e;
  Tensor xb = Tensor::zeros({2, 3}, DType::BF16);
  EXPECT_FALSE(ops::check::mixed_dtype_ok(x, xb));
  EXPECT_FALSE(ops::check::mixed_dtype_ok(xb, x));
  e = error_of([&] { ops::check::like(xb, x, "op", "arg"); });
  EXPECT_NE(e.find("has dtype bf16, expected f32"), std::string::npos) << e;
}

TEST(OpChecks, CudaAllowsF32Bf16Mixes) {
  Tensor xb = fake_cuda({2, 3}, DType::BF16), wf = fake_cuda({4, 3}, DType::F32);
  Tensor x64 = fake_cuda({2, 3}, DType::F64);
  EXPECT_TRUE(ops::check::mixed_dtype_ok(wf, xb));
  EXPECT_TRUE(ops::check::mixed_dtype_ok(xb, wf));
  EXPECT_FALSE(ops::check::mixed_dtype_ok(x64, wf));  // only f32 and bf16 mix
  EXPECT_NO_THROW(ops::check::like(wf, xb, "op", "w"));
  std::string e = error_of([&] { ops::check::like(x64, wf, "op", "x"); });
  EXPECT_NE(e.find("f64"), std::string::npos) << e;
  // A CUDA tensor against a CPU one is still a device error.
  e = error_of([&] { ops::check::like(Tensor::zeros({4, 3}), xb, "op", "w"); });
  EXPECT_NE(e.find("is on cpu"), std::string::npos) << e;
#ifndef RAE_WITH_CUDA
  // bf16 x, F32 weight/bias/gradients pass every argument check and reach the dispatch (which,
  // in this build, has no CUDA backend); CUDA builds run these mixes in tests/device/check.sh.
  Tensor out = fake_cuda({2, 4}, DType::BF16), b = fake_cuda({4}, DType::F32);
  e = error_of([&] { ops::linear_forward(out, xb, wf, b); });
  EXPECT_NE(e.find("build without CUDA"), std::string::npos) << e;
  Tensor dw = fake_cuda({4, 3}, DType::F32), db = fake_cuda({4}, DType::F32);
  Tensor dx = fake_cuda({2, 3}, DType::BF16);
  e = error_of([&] { ops::linear_backward(dx, dw, db, out, xb, wf); });
  EXPECT_NE(e.find("build without CUDA"), std::string::npos) << e;
  Tensor x3 = fake_cuda({1, 2, 3}, DType::BF16), rstd = fake_cuda({2}, DType::F32);
  Tensor nw = fake_cuda({3}, DType::F32), sc = fake_cuda({1, 3}, DType::BF16);
  e = error_of([&] { ops::rmsnorm_modulate_forward(x3, rstd, x3, nw, Tensor(), sc, 1e-6); });
  EXPECT_NE(e.find("build without CUDA"), std::string::npos) << e;
#endif
}

// On a GPU: a few steps of the micro model per precision against the CPU (F32) run. Tolerances
// (max relative loss difference over 3 steps): fp32 1e-4 (summation order only), tf32 5e-3
// (10-bit mantissa GEMM inputs), bf16 3e-2 (8-bit mantissa activations and GEMM inputs).
TEST(TrainPrecision, CudaMatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  ops::PrecisionGuard keep(ops::precision());  // the trainer sets the global GEMM precision
  auto losses = [](const std::string& device, const std::string& precision) {
    train::TrainConfig c;
    c.preset = "DiTDH-micro";
    c.global_batch_size = 8;
    c.lr = 1e-3;
    c.steps = 3;
    c.progress = false;
    c.device = device;
    c.precision = precision;
    train::SyntheticStream data(32, 4, 8, 5);
    train::Trainer tr(c, data, "");
    std::vector<double> l;
    for (int i = 0; i < 3; ++i) l.push_back(tr.step().loss);
    return l;
  };
  const std::vector<double> cpu = losses("cpu", "fp32");
  for (auto [precision, tol] :
       {std::pair<const char*, double>{"fp32", 1e-4}, {"tf32", 5e-3}, {"bf16", 3e-2}}) {
    std::vector<double> gpu = losses("cuda", precision);
    ASSERT_EQ(gpu.size(), cpu.size());
    for (size_t i = 0; i < cpu.size(); ++i)
      EXPECT_NEAR(gpu[i], cpu[i], tol * std::abs(cpu[i])) << precision << " step " << i + 1;
  }
}
