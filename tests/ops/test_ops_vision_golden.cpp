// Golden tests for the vision ops against PyTorch (tests/reference/make_vision_op_goldens.py):
// conv2d/conv1d (F.conv2d / F.conv1d), batch norm (F.batch_norm, train with the running-stat
// update and eval), pooling (F.max_pool2d, F.avg_pool2d with and without count_include_pad,
// F.adaptive_avg_pool2d), ReLU / LeakyReLU, and the resize against torch-fidelity's own
// interpolate_bilinear_2d_like_tensorflow1x. Each runs in F64 and F32 on the same inputs; the
// gradient buffers start non-zero (accumulation is checked). Tolerances are stated per test as
// (rtol, atol relative to max |ref|) for F32; F64 uses 1e-10 (only summation order differs).
#include <gtest/gtest.h>

#include <cstring>

#include "ops/batchnorm.h"
#include "ops/conv.h"
#include "ops/golden_check.h"
#include "ops/pool.h"
#include "ops/relu.h"
#include "ops/resize.h"

using namespace rae;
using namespace rae::test::golden;

namespace {

// F32: rtol 1e-5, atol 1e-5 * max: dot products of up to 5 * 5 * 2 = 50 (forward) and a few
// hundred (dw over the batch) terms of O(1) values, float32 unit roundoff 6e-8.
TEST(OpsVisionGolden, Conv2d) {
  for (const char* name : {"conv2d_3x3_pad1", "conv2d_3x3_stride2", "conv2d_1x7_pad03",
                           "conv2d_7x1_pad30", "conv2d_1x1", "conv2d_5x5_pad2_stride21"}) {
    Golden g(name);
    const bool bias = g.has("b");
    ops::Conv2dParams p;
    p.stride_h = static_cast<int64_t>(g.param("stride_h"));
    p.stride_w = static_cast<int64_t>(g.param("stride_w"));
    p.pad_h = static_cast<int64_t>(g.param("pad_h"));
    p.pad_w = static_cast<int64_t>(g.param("pad_w"));
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-5});
      Tensor x = g.in("x", dt), w = g.in("w", dt), b = bias ? g.in("b", dt) : Tensor();
      Tensor out = empty_like(g.ref("out"), dt);
      ops::conv2d_forward(out, x, w, b, p);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x"), dw = gc.make("w"), db = bias ? gc.make("b") : Tensor();
      ops::conv2d_backward(dx, dw, db, g.in("dout", dt), x, w, p);
      gc.check(name);
    }
  }
}

// F32: as Conv2d (9 * 4 = 36-term dot products).
TEST(OpsVisionGolden, Conv1d) {
  for (const char* name : {"conv1d_k9_pad4", "conv1d_k3_stride2"}) {
    Golden g(name);
    const bool bias = g.has("b");
    ops::Conv1dParams p;
    p.stride = static_cast<int64_t>(g.param("stride"));
    p.pad = static_cast<int64_t>(g.param("pad"));
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-5});
      Tensor x = g.in("x", dt), w = g.in("w", dt), b = bias ? g.in("b", dt) : Tensor();
      Tensor out = empty_like(g.ref("out"), dt);
      ops::conv1d_forward(out, x, w, b, p);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x"), dw = gc.make("w"), db = bias ? gc.make("b") : Tensor();
      ops::conv1d_backward(dx, dw, db, g.in("dout", dt), x, w, p);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-5, atol 1e-5 * max: per-channel means/variances over 28-60 rows; the backward
// subtracts two channel sums, so near-zero entries need the atol.
TEST(OpsVisionGolden, BatchNormTrain) {
  for (const char* name : {"batchnorm2d_train", "batchnorm1d_train"}) {
    Golden g(name);
    const double momentum = g.param("momentum"), eps = g.param("eps");
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-5});
      const DType sdt = stat_dtype(dt);
      Tensor x = g.in("x", dt), gamma = g.in("gamma", dt), beta = g.in("beta", dt);
      Tensor rm = g.in("running_mean", sdt), rv = g.in("running_var", sdt);
      const int64_t C = gamma.numel();
      Tensor out = empty_like(g.ref("out"), dt);
      Tensor mean = Tensor::empty({C}, sdt), rstd = Tensor::empty({C}, sdt);
      ops::batchnorm_train_forward(out, mean, rstd, x, gamma, beta, rm, rv, momentum, eps);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      expect_close(rm, g.ref("running_mean_new"), tol, std::string(name) + " running_mean");
      expect_close(rv, g.ref("running_var_new"), tol, std::string(name) + " running_var");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x"), dg = gc.make("gamma"), dbeta = gc.make("beta");
      ops::batchnorm_train_backward(dx, dg, dbeta, g.in("dout", dt), x, gamma, mean, rstd);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-5, atol 1e-5 * max: one affine map per element; 48-row parameter sums.
TEST(OpsVisionGolden, BatchNormEval) {
  Golden g("batchnorm2d_eval");
  const double eps = g.param("eps");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-5});
    const DType sdt = stat_dtype(dt);
    Tensor x = g.in("x", dt), gamma = g.in("gamma", dt), beta = g.in("beta", dt);
    Tensor rm = g.in("running_mean", sdt), rv = g.in("running_var", sdt);
    Tensor out = empty_like(g.ref("out"), dt);
    ops::batchnorm_eval_forward(out, x, gamma, beta, rm, rv, eps);
    expect_close(out, g.ref("out"), tol, "batchnorm2d_eval out");
    GradCheck gc(g, dt, tol);
    Tensor dx = gc.make("x"), dg = gc.make("gamma"), dbeta = gc.make("beta");
    ops::batchnorm_eval_backward(dx, dg, dbeta, g.in("dout", dt), x, gamma, rm, rv, eps);
    gc.check("batchnorm2d_eval");
  }
}

// F32: rtol 1e-6, atol 1e-6 * max: a max copies a value; a mean sums at most 9 terms.
TEST(OpsVisionGolden, Pool2d) {
  for (const char* name :
       {"max_pool2d_k3s2", "max_pool2d_k3s1p1", "max_pool2d_k2s2", "avg_pool2d_k3s1p1_exclude_pad",
        "avg_pool2d_k3s1p1_include_pad", "avg_pool2d_k2s2"}) {
    Golden g(name);
    const bool is_max = std::strncmp(name, "max", 3) == 0;
    const auto p = ops::Pool2dParams::square(
        static_cast<int64_t>(g.param("kernel")), static_cast<int64_t>(g.param("stride")),
        static_cast<int64_t>(g.param("pad")), g.param("count_include_pad") != 0);
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-6, 1e-6});
      Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
      if (is_max)
        ops::max_pool2d_forward(out, x, p);
      else
        ops::avg_pool2d_forward(out, x, p);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x");
      if (is_max)
        ops::max_pool2d_backward(dx, g.in("dout", dt), x, p);
      else
        ops::avg_pool2d_backward(dx, g.in("dout", dt), p);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-6, atol 1e-6 * max: means of at most 35 terms.
TEST(OpsVisionGolden, AdaptiveAvgPool2d) {
  for (const char* name : {"adaptive_avg_pool2d_1x1", "adaptive_avg_pool2d_3x2"}) {
    Golden g(name);
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-6, 1e-6});
      Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
      ops::adaptive_avg_pool2d_forward(out, x);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x");
      ops::adaptive_avg_pool2d_backward(dx, g.in("dout", dt));
      gc.check(name);
    }
  }
}

// F32: exact up to the rounding of slope * x and of the accumulation into the gradient buffer
// (two float32 roundings): rtol 2.5e-7.
TEST(OpsVisionGolden, Rectifiers) {
  for (const char* name : {"relu", "leaky_relu_0p2"}) {
    Golden g(name);
    const bool leaky = std::strncmp(name, "leaky", 5) == 0;
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {2.5e-7, 0});
      Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
      if (leaky)
        ops::leaky_relu_forward(out, x, 0.2);
      else
        ops::relu_forward(out, x);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x");
      if (leaky)
        ops::leaky_relu_backward(dx, g.in("dout", dt), x, 0.2);
      else
        ops::relu_backward(dx, g.in("dout", dt), x);
      gc.check(name);
    }
  }
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

uint64_t fnv1a64(const void* data, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

// The F32 resize is torch-fidelity's float32 arithmetic operation for operation: bit-identical.
// The F64 path matches its float64 path to 1e-12 (exact up to summation order: none here).
TEST(OpsVisionGolden, ResizeTf1MatchesTorchFidelityBitwise) {
  for (const char* name : {"resize_tf1_up", "resize_tf1_down"}) {
    Golden g(name);
    Tensor x = g.ref("x"), want32 = g.ref("out_f32");
    Tensor out32 = Tensor::empty(want32.shape(), DType::F32);
    ops::resize_bilinear_tf1(out32, x, 128, 128);
    EXPECT_TRUE(bitwise_equal(out32, want32))
        << name << " f32: max |diff| " << test::max_abs_diff(out32, want32);
    Tensor out64 = Tensor::empty(want32.shape(), DType::F64);
    ops::resize_bilinear_tf1(out64, x, 128, 128);
    EXPECT_LE(test::max_abs_diff(out64, g.ref("out_f64")), 1e-12) << name << " f64";
  }
}

// Inception's 299 x 299 target from two odd sizes, compared by a hash of the float32 bytes.
TEST(OpsVisionGolden, ResizeTf1To299MatchesTorchFidelityBitwise) {
  auto file = rae::safetensors::load(test::golden_path("ops/resize_tf1_299.safetensors"));
  for (const char* tag : {"a", "b"}) {
    Tensor x = file.get(std::string("x_") + tag);
    Tensor out = Tensor::empty({1, 299, 299, 3}, DType::F32);
    ops::resize_bilinear_tf1(out, x, 128, 128);
    const std::string want = file.metadata.at(std::string("fnv1a64_") + tag);
    EXPECT_EQ(std::to_string(fnv1a64(out.raw(), out.nbytes())), want) << "image " << tag;
  }
}

}  // namespace
