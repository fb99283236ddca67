// Golden tests for the stage-1 ops against PyTorch (tests/reference/make_stage1_op_goldens.py):
// the bilinear resize (F.interpolate), BatchNormLocal (grouped batch norm), spectral norm
// (torch.nn.utils.spectral_norm, one power iteration), circular padding (F.pad), one LPIPS layer
// (the lpips package's normalisation and lin conv) and DiffAug (the release's formulas). F64 and
// F32 on the same inputs; gradient buffers start non-zero (accumulation is checked).
#include <gtest/gtest.h>

#include "models/diffaug.h"
#include "ops/batchnorm.h"
#include "ops/golden_check.h"
#include "ops/image.h"
#include "ops/loss.h"
#include "ops/pad.h"
#include "ops/spectral_norm.h"

using namespace rae;
using namespace rae::test::golden;

namespace {

// F32: rtol 1e-5 (4-tap weighted sums; the backward gathers a few more).
TEST(OpsStage1Golden, ResizeBilinear) {
  for (const char* name :
       {"stage1_resize_bilinear_down", "stage1_resize_bilinear_up", "stage1_resize_bilinear_8_7"}) {
    Golden g(name);
    for (DType dt : kDtypes) {
      const Tol tol = tol_for(dt, {1e-5, 1e-5});
      Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
      ops::resize_bilinear_forward(out, x);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      ops::resize_bilinear_backward(gc.make("x"), g.in("dout", dt));
      gc.check(name);
    }
  }
}

TEST(OpsStage1Golden, BatchNormLocal) {
  Golden g("stage1_batchnorm_local");
  for (DType dt : kDtypes) {
    const Tol tol = tol_for(dt, {1e-5, 1e-5});
    Tensor x = g.in("x", dt), gamma = g.in("gamma", dt), beta = g.in("beta", dt);
    const int64_t N = x.dim(0), C = x.dim(2);
    Tensor out = empty_like(g.ref("out"), dt);
    Tensor mean = Tensor::empty({N, C}, stat_dtype(dt)),
           rstd = Tensor::empty({N, C}, stat_dtype(dt));
    ops::batchnorm_train_forward(out, mean, rstd, x, gamma, beta, Tensor(), Tensor(), 0.1,
                                 g.param("eps"), N);
    expect_close(out, g.ref("out"), tol, "batchnorm_local out");
    GradCheck gc(g, dt, tol);
    Tensor dx = gc.make("x"), dgamma = gc.make("gamma"), dbeta = gc.make("beta");
    ops::batchnorm_train_backward(dx, dgamma, dbeta, g.in("dout", dt), x, gamma, mean, rstd, N);
    gc.check("batchnorm_local");
  }
}

TEST(OpsStage1Golden, SpectralNormOnePowerIteration) {
  Golden g("stage1_spectral_norm");
  for (DType dt : kDtypes) {
    const Tol tol = tol_for(dt, {1e-5, 1e-5});
    const DType st = stat_dtype(dt);
    Tensor w = g.in("w", dt), u = g.in("u", st), v = g.in("v", st);
    Tensor out = empty_like(g.ref("out"), dt), sigma = Tensor::empty({1}, st);
    ops::spectral_norm_forward(out, sigma, w, u, v, 1);
    expect_close(out, g.ref("out"), tol, "spectral_norm out");
    expect_close(u, g.ref("u_after"), tol, "spectral_norm u");
    expect_close(v, g.ref("v_after"), tol, "spectral_norm v");
    expect_close(sigma, g.ref("sigma"), tol, "spectral_norm sigma");
    GradCheck gc(g, dt, tol);
    ops::spectral_norm_backward(gc.make("w"), g.in("dout", dt), w, u, v, sigma);
    gc.check("spectral_norm");
  }
}

TEST(OpsStage1Golden, PadCircular) {
  Golden g("stage1_pad_circular1d");
  const int64_t pad = static_cast<int64_t>(g.param("pad"));
  for (DType dt : kDtypes) {
    // Copies forward, sums of up to three values backward.
    const Tol tol = tol_for(dt, {1e-6, 1e-6});
    Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
    ops::pad_circular1d_forward(out, x, pad);
    expect_close(out, g.ref("out"), tol, "pad out");
    GradCheck gc(g, dt, tol);
    ops::pad_circular1d_backward(gc.make("x"), g.in("dout", dt), pad);
    gc.check("pad");
  }
}

TEST(OpsStage1Golden, LpipsDistance) {
  Golden g("stage1_lpips_distance");
  for (DType dt : kDtypes) {
    const Tol tol = tol_for(dt, {1e-5, 1e-5});
    Tensor fx = g.in("fx", dt), fy = g.in("fy", dt), w = g.in("w", dt);
    Tensor out = Tensor::full({1}, ops::lpips_distance_forward(fx, fy, w), DType::F64);
    expect_close(out, g.ref("out"), tol, "lpips out");
    GradCheck gc(g, dt, tol);
    ops::lpips_distance_backward(gc.make("fx"), fx, fy, w, 1e-10, g.ref("dout").item(0));
    gc.check("lpips");
  }
}

TEST(OpsStage1Golden, DiffAug) {
  Golden g("stage1_diffaug");
  Tensor r = g.in("r", DType::F32);
  const int64_t B = r.dim(0);
  Tensor x0 = g.ref("x");
  std::vector<float> u(r.data<float>(), r.data<float>() + r.numel());
  models::DiffAugParams p =
      models::diffaug_params(u, B, x0.dim(1), x0.dim(2), true, true, true, g.param("cutout"));
  for (DType dt : kDtypes) {
    const Tol tol = tol_for(dt, {1e-5, 1e-5});
    Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
    nn::Arena A(Device::cpu(), size_t(1) << 20, dt);
    models::diffaug_forward(A, out, x, p);
    expect_close(out, g.ref("out"), tol, "diffaug out");
    GradCheck gc(g, dt, tol);
    models::diffaug_backward(A, gc.make("x"), g.in("dout", dt), p);
    gc.check("diffaug");
  }
}

}  // namespace
