// The stage-1 op cases: the losses (L1, hinge, mean, the discriminator's accuracy count, one
// LPIPS layer), the pixel ops (per-channel affine, quantisation, PyTorch's
// bilinear resize down, up and mixed), DiffAug (translation, colour, cutout), spectral norm
// (eval form with gradients; one power iteration forward), circular padding (pad < L, pad = L),
// batch norm with per-sample groups and the noise augmentation.
#include "core/rng.h"
#include "ops/batchnorm.h"
#include "ops/diffaug.h"
#include "ops/image.h"
#include "ops/loss.h"
#include "ops/noise.h"
#include "ops/op_stage1.h"
#include "ops/pad.h"
#include "ops/spectral_norm.h"
#include "support/util.h"

namespace rae::test::ops {

namespace op = rae::ops;

namespace {

const Shape kImg = {2, 5, 4, 3};

// A fixed integer or float table input (not differentiated, keeps its dtype).
InputSpec i32_table(const std::string& name, const std::vector<int32_t>& v, int64_t cols) {
  const Shape s = {static_cast<int64_t>(v.size()) / cols, cols};
  InputSpec spec{name, s, false, {}, DType::I32};
  spec.make = [v, s](uint64_t) {
    Tensor t = Tensor::empty(s, DType::I32);
    std::copy(v.begin(), v.end(), t.data<int32_t>());
    return t;
  };
  return spec;
}
InputSpec f32_table(const std::string& name, const std::vector<float>& v, int64_t cols) {
  const Shape s = {static_cast<int64_t>(v.size()) / cols, cols};
  InputSpec spec{name, s, false, {}, DType::F32};
  spec.make = [v, s](uint64_t) {
    Tensor t = Tensor::empty(s, DType::F32);
    std::copy(v.begin(), v.end(), t.data<float>());
    return t;
  };
  return spec;
}

// A statistic/buffer input as the op wants it: F32 (F64 in F64 runs), a private copy.
Tensor stat_copy(const OpCtx& c, const Tensor& t) {
  return t.cast(c.stat({1}).dtype());
}

// ---- losses --------------------------------------------------------------------------------

void add_losses(std::vector<OpCase>& v) {
  v.push_back({"l1_loss", {in("pred", {2, 3, 4}), in("target", {2, 3, 4})}, [](OpCtx& c) {
                 Tensor out = OpCtx::scalar(op::l1_forward(c.in[0], c.in[1]));
                 if (c.backward()) {
                   const double s = c.dout_scalar(0);
                   op::l1_backward(c.grad[0], c.in[0], c.in[1], s);
                   op::l1_backward(c.grad[1], c.in[1], c.in[0], s);  // symmetric
                 }
                 return OpOutputs{{out}, {}};
               }});
  for (double sign : {1.0, -1.0}) {
    v.push_back({sign > 0 ? "hinge_fake" : "hinge_real", {in("x", {2, 10})}, [sign](OpCtx& c) {
                   Tensor out = OpCtx::scalar(op::hinge_forward(c.in[0], sign));
                   if (c.backward()) op::hinge_backward(c.grad[0], c.in[0], sign, c.dout_scalar(0));
                   return OpOutputs{{out}, {}};
                 }});
  }
  v.push_back({"mean_loss", {in("x", {2, 7})}, [](OpCtx& c) {
                 Tensor out = OpCtx::scalar(op::mean_forward(c.in[0]));
                 if (c.backward()) op::mean_backward(c.grad[0], c.dout_scalar(0));
                 return OpOutputs{{out}, {}};
               }});
  OpCase cg{"count_greater", {nograd("a", {3, 8}), nograd("b", {3, 8})}, [](OpCtx& c) {
              return OpOutputs{
                  {OpCtx::scalar(static_cast<double>(op::count_greater(c.in[0], c.in[1])))}, {}};
            }};
  cg.bf16 = false;  // bf16 rounding may tie close pairs
  v.push_back(cg);
  v.push_back(
      {"lpips_distance",
       {in("fx", {2, 3, 4, 6}), nograd("fy", {2, 3, 4, 6}), uniform("w", {6}, 0.1, 1.0, false)},
       [](OpCtx& c) {
         Tensor out = OpCtx::scalar(op::lpips_distance_forward(c.in[0], c.in[1], c.in[2]));
         if (c.backward())
           op::lpips_distance_backward(c.grad[0], c.in[0], c.in[1], c.in[2], 1e-10,
                                       c.dout_scalar(0));
         return OpOutputs{{out}, {}};
       }});
}

// ---- pixel ops -----------------------------------------------------------------------------

const std::vector<double> kScale = {2.0, -0.5, 1.5}, kShift = {-1.0, 0.25, 0.1};

OpCase resize_case(const std::string& name, const Shape& xs, int64_t oh, int64_t ow) {
  const Shape os = {xs[0], oh, ow, xs[3]};
  return {name, {in("x", xs)}, [=](OpCtx& c) {
            Tensor out = c.empty(os);
            op::resize_bilinear_forward(out, c.in[0]);
            if (c.backward()) op::resize_bilinear_backward(c.grad[0], c.dout[0]);
            return OpOutputs{{out}, {}};
          }};
}

void add_pixel_ops(std::vector<OpCase>& v) {
  v.push_back({"channel_affine", {in("x", kImg)}, [](OpCtx& c) {
                 Tensor out = c.empty(kImg);
                 op::channel_affine_forward(out, c.in[0], kScale, kShift);
                 if (c.backward()) op::channel_affine_backward(c.grad[0], c.dout[0], kScale);
                 return OpOutputs{{out}, {}};
               }});
  OpCase q{"quantize_pm1", {uniform("x", kImg, -1.3, 1.3, false)}, [](OpCtx& c) {
             Tensor out = c.empty(kImg);
             op::quantize_pm1(out, c.in[0]);
             return OpOutputs{{out}, {}};
           }};
  q.bf16 = false;    // a step function: bf16 inputs land on other steps
  q.f32_tol = 1e-2;  // an F32 input may round to the neighbouring level
  v.push_back(q);
  v.push_back(resize_case("resize_bilinear_down", {2, 7, 9, 3}, 4, 5));
  v.push_back(resize_case("resize_bilinear_up", {2, 3, 4, 2}, 5, 7));
  v.push_back(resize_case("resize_bilinear_mixed", {1, 9, 3, 2}, 2, 8));
}

// ---- DiffAug -------------------------------------------------------------------------------

void add_diffaug(std::vector<OpCase>& v) {
  v.push_back(
      {"diffaug_translate", {in("x", kImg), i32_table("shifts", case_shifts(), 2)}, [](OpCtx& c) {
         Tensor out = c.empty(kImg);
         op::diffaug_translate_forward(out, c.in[0], c.in[1]);
         if (c.backward()) op::diffaug_translate_backward(c.grad[0], c.dout[0], c.in[1]);
         return OpOutputs{{out}, {}};
       }});
  v.push_back(
      {"diffaug_color", {in("x", kImg), f32_table("factors", case_factors(), 3)}, [](OpCtx& c) {
         Tensor out = c.empty(kImg);
         op::diffaug_color_forward(out, c.in[0], c.in[1]);
         if (c.backward()) op::diffaug_color_backward(c.grad[0], c.dout[0], c.in[1]);
         return OpOutputs{{out}, {}};
       }});
  v.push_back(
      {"diffaug_cutout", {in("x", kImg), i32_table("boxes", case_boxes(), 4)}, [](OpCtx& c) {
         Tensor out = c.empty(kImg);
         op::diffaug_cutout_forward(out, c.in[0], c.in[1]);
         if (c.backward()) op::diffaug_cutout_backward(c.grad[0], c.dout[0], c.in[1]);
         return OpOutputs{{out}, {}};
       }});
}

// ---- spectral norm, padding, grouped batch norm, noise -------------------------------------

void add_discriminator_ops(std::vector<OpCase>& v) {
  // Eval form (no power iteration): sigma = u.(W v) is linear in W, so finite differences see
  // exactly the analytic gradient with u, v constant.
  v.push_back({"spectral_norm_eval",
               {in("w", {4, 3, 5}), nograd("u", {4}), nograd("v", {15})},
               [](OpCtx& c) {
                 Tensor u = stat_copy(c, c.in[1]), vv = stat_copy(c, c.in[2]);
                 Tensor sigma = c.stat({1}), w_sn = c.empty({4, 3, 5});
                 op::spectral_norm_forward(w_sn, sigma, c.in[0], u, vv, 0);
                 if (c.backward())
                   op::spectral_norm_backward(c.grad[0], c.dout[0], c.in[0], u, vv, sigma);
                 return OpOutputs{{w_sn}, {sigma}};
               }});
  // Training form: one power iteration updates u and v (forward only: PyTorch does not
  // differentiate through the iteration either).
  v.push_back({"spectral_norm_power",
               {nograd("w", {5, 2, 3}), nograd("u", {5}), nograd("v", {6})},
               [](OpCtx& c) {
                 Tensor u = stat_copy(c, c.in[1]), vv = stat_copy(c, c.in[2]);
                 Tensor sigma = c.stat({1}), w_sn = c.empty({5, 2, 3});
                 op::spectral_norm_forward(w_sn, sigma, c.in[0], u, vv, 1);
                 return OpOutputs{{w_sn, u, vv, sigma}, {}};
               }});
  for (int64_t pad : {2, 3}) {
    const Shape xs = pad == 2 ? Shape{2, 5, 3} : Shape{1, 3, 2};
    const Shape os = {xs[0], xs[1] + 2 * pad, xs[2]};
    v.push_back({pad == 2 ? "pad_circular1d" : "pad_circular1d_full", {in("x", xs)}, [=](OpCtx& c) {
                   Tensor out = c.empty(os);
                   op::pad_circular1d_forward(out, c.in[0], pad);
                   if (c.backward()) op::pad_circular1d_backward(c.grad[0], c.dout[0], pad);
                   return OpOutputs{{out}, {}};
                 }});
  }
  // BatchNormLocal (virtual batch 1): x (N, L, C) normalised per sample, eps 1e-6.
  v.push_back({"batchnorm_train_grouped",
               {in("x", {3, 4, 5}), uniform("gamma", {5}, 0.5, 1.5), in("beta", {5})},
               [](OpCtx& c) {
                 Tensor out = c.empty({3, 4, 5}), mean = c.stat({3, 5}), rstd = c.stat({3, 5});
                 op::batchnorm_train_forward(out, mean, rstd, c.in[0], c.in[1], c.in[2], Tensor(),
                                             Tensor(), 0.1, 1e-6, 3);
                 if (c.backward())
                   op::batchnorm_train_backward(c.grad[0], c.grad[1], c.grad[2], c.dout[0], c.in[0],
                                                c.in[1], mean, rstd, 3);
                 return OpOutputs{{out}, {mean, rstd}};
               }});
  InputSpec ids{"ids", {2}, false, {}, DType::I64};
  ids.make = [](uint64_t) {
    Tensor t = Tensor::empty({2}, DType::I64);
    t.data<int64_t>()[0] = 5;
    t.data<int64_t>()[1] = 17;
    return t;
  };
  v.push_back({"noise_augment", {nograd("z", {2, 3, 4}), ids}, [](OpCtx& c) {
                 Tensor z = c.in[0].clone();
                 Tensor sigma = Tensor::empty({2}, DType::F32, c.device);
                 op::noise_augment_(z, c.in[1], op::NoiseAugKey{7, 3, 0.8}, sigma);
                 return OpOutputs{{z}, {sigma}};
               }});
}

}  // namespace

void add_stage1_cases(std::vector<OpCase>& v) {
  std::vector<OpCase> mine;
  add_losses(mine);
  add_pixel_ops(mine);
  add_diffaug(mine);
  add_discriminator_ops(mine);
  for (OpCase& c : mine) {
    c.reference = stage1_reference(c.name);
    v.push_back(std::move(c));
  }
}

}  // namespace rae::test::ops
