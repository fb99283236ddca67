// The vision op cases (channels last): convolution (2-D and 1-D, strided/padded/rectangular,
// pointwise, a channel slice of a wider output, the fused ReLU epilogue, one case big enough to
// use several GEMM chunks and dw row groups), batch norm (training and inference form), max /
// average / adaptive pooling, ReLU / LeakyReLU, and the TF1-compatible resize (forward only).
#include "ops/batchnorm.h"
#include "ops/conv.h"
#include "ops/op_vision.h"
#include "ops/pool.h"
#include "ops/relu.h"
#include "ops/resize.h"
#include "support/util.h"

namespace rae::test::ops {

namespace op = rae::ops;

namespace {

Tensor undef_or(const Tensor& g) {
  return g.defined() ? g : Tensor();
}

// A (shape..., width + 3) buffer and its columns [2, 2 + width): the layout of a branch written
// into a concat buffer (row-strided, not contiguous).
Tensor wide_slice(const OpCtx& c, Shape shape) {
  const int64_t width = shape[-1];
  shape[-1] = width + 3;
  return c.zeros(shape).narrow(-1, 2, width);
}

// ---- convolution ---------------------------------------------------------------------------

struct ConvSpec {
  int64_t N = 2, H = 5, W = 4, C = 3, O = 4, KH = 3, KW = 3;
  int64_t sh = 1, sw = 1, ph = 0, pw = 0;
  bool bias = true, out_slice = false, is_1d = false, relu = false;
};

OpCase conv_case(const std::string& name, const ConvSpec& s) {
  const int64_t OH = op::conv_out_size(s.H, s.KH, s.sh, s.ph);
  const int64_t OW = op::conv_out_size(s.W, s.KW, s.sw, s.pw);
  const Shape xs = s.is_1d ? Shape{s.N, s.W, s.C} : Shape{s.N, s.H, s.W, s.C};
  const Shape ws = s.is_1d ? Shape{s.O, s.KW, s.C} : Shape{s.O, s.KH, s.KW, s.C};
  const Shape os = s.is_1d ? Shape{s.N, OW, s.O} : Shape{s.N, OH, OW, s.O};
  const bool grad = !s.relu;  // the fused ReLU is forward-only
  std::vector<InputSpec> ins = {grad ? in("x", xs) : nograd("x", xs),
                                grad ? in("w", ws) : nograd("w", ws)};
  if (s.bias) ins.push_back(grad ? in("b", {s.O}) : nograd("b", {s.O}));
  OpCase oc{name, ins, [=](OpCtx& c) {
              const Tensor &x = c.in[0], &w = c.in[1];
              Tensor b = s.bias ? c.in[2] : Tensor();
              Tensor out = s.out_slice ? wide_slice(c, os) : c.empty(os);
              op::Conv2dParams p2{s.sh, s.sw, s.ph, s.pw, s.relu};
              op::Conv1dParams p1{s.sw, s.pw, s.relu};
              if (s.is_1d)
                op::conv1d_forward(out, x, w, b, p1);
              else
                op::conv2d_forward(out, x, w, b, p2);
              if (c.backward()) {
                Tensor dout = c.dout[0];
                if (s.out_slice) {  // a row-strided output gradient, as a concat's slice
                  Tensor wide = wide_slice(c, os);
                  wide.copy_from(dout);
                  dout = wide;
                }
                Tensor db = s.bias ? undef_or(c.grad[2]) : Tensor();
                if (s.is_1d)
                  op::conv1d_backward(c.grad[0], c.grad[1], db, dout, x, w, p1);
                else
                  op::conv2d_backward(c.grad[0], c.grad[1], db, dout, x, w, p2);
              }
              return OpOutputs{{out}, {}};
            }};
  return oc;
}

void add_conv(std::vector<OpCase>& v) {
  ConvSpec s;
  s.ph = s.pw = 1;
  v.push_back(conv_case("conv2d_3x3_pad1", s));
  ConvSpec st;
  st.H = 7;
  st.W = 6;
  st.O = 5;
  st.sh = st.sw = 2;
  st.bias = false;
  v.push_back(conv_case("conv2d_3x3_stride2_nobias", st));
  // Inception's rectangular kernels: (1, 3) with padding (0, 1) and (3, 1) with (1, 0), plus a
  // rectangular kernel with mixed strides and padding.
  ConvSpec r13;
  r13.KH = 1;
  r13.KW = 3;
  r13.pw = 1;
  v.push_back(conv_case("conv2d_1x3_pad01", r13));
  ConvSpec r31;
  r31.KH = 3;
  r31.KW = 1;
  r31.ph = 1;
  v.push_back(conv_case("conv2d_3x1_pad10", r31));
  ConvSpec rm;
  rm.H = 6;
  rm.W = 5;
  rm.KH = 3;
  rm.KW = 2;
  rm.sh = 2;
  rm.ph = 1;
  v.push_back(conv_case("conv2d_3x2_stride21_pad10", rm));
  ConvSpec pw;
  pw.KH = pw.KW = 1;
  v.push_back(conv_case("conv2d_1x1", pw));
  ConvSpec pw2 = pw;
  pw2.sh = pw2.sw = 2;
  v.push_back(conv_case("conv2d_1x1_stride2", pw2));
  ConvSpec sl = s;
  sl.out_slice = true;
  v.push_back(conv_case("conv2d_out_slice", sl));
  ConvSpec relu = s;
  relu.relu = true;
  v.push_back(conv_case("conv2d_fused_relu", relu));
  // 8192 output rows: several forward chunks, dx chunks per image and two dw row groups.
  ConvSpec big;
  big.H = big.W = 64;
  big.C = 2;
  big.O = 3;
  big.ph = big.pw = 1;
  OpCase bc = conv_case("conv2d_chunked", big);
  v.push_back(bc);
  // conv1d: the discriminator's residual conv (kernel 9, padding 4) and a strided one.
  ConvSpec k9;
  k9.is_1d = true;
  k9.H = 1;
  k9.W = 12;
  k9.C = 4;
  k9.O = 3;
  k9.KH = 1;
  k9.KW = 9;
  k9.pw = 4;
  v.push_back(conv_case("conv1d_k9_pad4", k9));
  ConvSpec c1s = k9;
  c1s.KW = 3;
  c1s.pw = 1;
  c1s.sw = 2;
  c1s.bias = false;
  c1s.out_slice = true;
  v.push_back(conv_case("conv1d_k3_stride2_slice", c1s));
}

// ---- batch norm ----------------------------------------------------------------------------

constexpr int64_t kBnC = 5;
const Shape kBnX = {2, 3, 4, kBnC};

// A per-channel statistic input as the op wants it: F32 (F64 in F64 runs), a private copy.
Tensor stat_copy(const OpCtx& c, const Tensor& t) {
  return t.cast(c.stat({1}).dtype());
}

void add_batchnorm(std::vector<OpCase>& v) {
  auto train = [](const std::string& name, bool affine, bool running) -> OpCase {
    std::vector<InputSpec> ins = {in("x", kBnX)};
    if (affine) {
      ins.push_back(uniform("gamma", {kBnC}, 0.5, 1.5));
      ins.push_back(in("beta", {kBnC}));
    }
    if (running) {
      ins.push_back(nograd("running_mean", {kBnC}));
      ins.push_back(uniform("running_var", {kBnC}, 0.5, 2.0, false));
    }
    return {name, ins, [=](OpCtx& c) {
              const Tensor& x = c.in[0];
              Tensor gamma = affine ? c.in[1] : Tensor(), beta = affine ? c.in[2] : Tensor();
              const int k = affine ? 3 : 1;
              Tensor rm = running ? stat_copy(c, c.in[k]) : Tensor();
              Tensor rv = running ? stat_copy(c, c.in[k + 1]) : Tensor();
              Tensor out = c.empty(kBnX), mean = c.stat({kBnC}), rstd = c.stat({kBnC});
              op::batchnorm_train_forward(out, mean, rstd, x, gamma, beta, rm, rv, 0.1, 1e-5);
              if (c.backward())
                op::batchnorm_train_backward(c.grad[0], affine ? c.grad[1] : Tensor(),
                                             affine ? c.grad[2] : Tensor(), c.dout[0], x, gamma,
                                             mean, rstd);
              std::vector<Tensor> aux = {mean, rstd};
              if (running) {
                aux.push_back(rm);
                aux.push_back(rv);
              }
              return OpOutputs{{out}, aux};
            }};
  };
  v.push_back(train("batchnorm_train", true, true));
  v.push_back(train("batchnorm_train_noaffine", false, false));
  // (N, L, C) rows of a conv1d output, with a row-strided (sliced) input.
  v.push_back({"batchnorm_train_sliced_x",
               {in("x", {2, 6, kBnC + 3}), uniform("gamma", {kBnC}, 0.5, 1.5), in("beta", {kBnC})},
               [](OpCtx& c) {
                 Tensor x = c.in[0].narrow(2, 1, kBnC);
                 Tensor out = c.empty({2, 6, kBnC}), mean = c.stat({kBnC}), rstd = c.stat({kBnC});
                 op::batchnorm_train_forward(out, mean, rstd, x, c.in[1], c.in[2], Tensor(),
                                             Tensor(), 0.1, 1e-5);
                 if (c.backward()) {
                   Tensor dx = c.grad[0].defined() ? c.grad[0].narrow(2, 1, kBnC) : Tensor();
                   op::batchnorm_train_backward(dx, c.grad[1], c.grad[2], c.dout[0], x, c.in[1],
                                                mean, rstd);
                 }
                 return OpOutputs{{out}, {mean, rstd}};
               }});
  v.push_back({"batchnorm_eval",
               {in("x", kBnX), uniform("gamma", {kBnC}, 0.5, 1.5), in("beta", {kBnC}),
                nograd("running_mean", {kBnC}), uniform("running_var", {kBnC}, 0.5, 2.0, false)},
               [](OpCtx& c) {
                 Tensor rm = stat_copy(c, c.in[3]), rv = stat_copy(c, c.in[4]);
                 Tensor out = c.empty(kBnX);
                 op::batchnorm_eval_forward(out, c.in[0], c.in[1], c.in[2], rm, rv, 1e-3);
                 if (c.backward())
                   op::batchnorm_eval_backward(c.grad[0], c.grad[1], c.grad[2], c.dout[0], c.in[0],
                                               c.in[1], rm, rv, 1e-3);
                 return OpOutputs{{out}, {}};
               }});
}

// ---- pooling -------------------------------------------------------------------------------

enum class PoolKind { Max, Avg };

OpCase pool_case(const std::string& name, PoolKind kind, const Shape& xs, op::Pool2dParams p,
                 bool out_slice = false) {
  const Shape os = op::pool2d_out_shape(xs, p);
  return {name, {in("x", xs)}, [=](OpCtx& c) {
            Tensor out = out_slice ? wide_slice(c, os) : c.empty(os);
            if (kind == PoolKind::Max)
              op::max_pool2d_forward(out, c.in[0], p);
            else
              op::avg_pool2d_forward(out, c.in[0], p);
            if (c.backward()) {
              if (kind == PoolKind::Max)
                op::max_pool2d_backward(c.grad[0], c.dout[0], c.in[0], p);
              else
                op::avg_pool2d_backward(c.grad[0], c.dout[0], p);
            }
            return OpOutputs{{out}, {}};
          }};
}

OpCase adaptive_case(const std::string& name, const Shape& xs, int64_t oh, int64_t ow) {
  const Shape os = {xs[0], oh, ow, xs[3]};
  return {name, {in("x", xs)}, [=](OpCtx& c) {
            Tensor out = c.empty(os);
            op::adaptive_avg_pool2d_forward(out, c.in[0]);
            if (c.backward()) op::adaptive_avg_pool2d_backward(c.grad[0], c.dout[0]);
            return OpOutputs{{out}, {}};
          }};
}

void add_pool(std::vector<OpCase>& v) {
  using P = op::Pool2dParams;
  const Shape xs = {2, 7, 6, 3};
  v.push_back(pool_case("max_pool2d_k3s2", PoolKind::Max, xs, P::square(3, 2)));
  v.push_back(pool_case("max_pool2d_k3s1p1", PoolKind::Max, xs, P::square(3, 1, 1)));
  v.push_back(pool_case("max_pool2d_k2s2", PoolKind::Max, {2, 6, 4, 3}, P::square(2)));
  v.push_back(pool_case("max_pool2d_k3s2_slice", PoolKind::Max, xs, P::square(3, 2), true));
  v.push_back(
      pool_case("avg_pool2d_k3s1p1_exclude_pad", PoolKind::Avg, xs, P::square(3, 1, 1, false)));
  v.push_back(pool_case("avg_pool2d_k3s1p1_include_pad", PoolKind::Avg, xs, P::square(3, 1, 1)));
  const P rect = rect_pool_params();
  v.push_back(pool_case("avg_pool2d_rect_exclude_pad", PoolKind::Avg, xs, rect));
  v.push_back(adaptive_case("adaptive_avg_pool2d_global", {2, 5, 4, 3}, 1, 1));
  v.push_back(adaptive_case("adaptive_avg_pool2d_3x2", {2, 7, 5, 3}, 3, 2));
}

// ---- rectifiers ----------------------------------------------------------------------------

void add_relu(std::vector<OpCase>& v) {
  v.push_back({"relu", {in("x", {2, 5, 8})}, [](OpCtx& c) {
                 Tensor out = c.empty({2, 5, 8});
                 op::relu_forward(out, c.in[0]);
                 if (c.backward()) op::relu_backward(c.grad[0], c.dout[0], c.in[0]);
                 return OpOutputs{{out}, {}};
               }});
  v.push_back({"leaky_relu_0p2", {in("x", {2, 5, 8})}, [](OpCtx& c) {
                 Tensor out = c.empty({2, 5, 8});
                 op::leaky_relu_forward(out, c.in[0], 0.2);
                 if (c.backward()) op::leaky_relu_backward(c.grad[0], c.dout[0], c.in[0], 0.2);
                 return OpOutputs{{out}, {}};
               }});
}

// ---- resize --------------------------------------------------------------------------------

// Random bytes (N, H, W, C) U8, fixed dtype.
InputSpec bytes(const std::string& name, const Shape& shape) {
  InputSpec s{name, shape, false, {}, DType::U8};
  s.make = [shape](uint64_t seed) {
    Tensor u = rand_uniform(shape, seed, 0.0, 256.0, DType::F64);
    Tensor t = Tensor::empty(shape, DType::U8);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.data<uint8_t>()[i] = static_cast<uint8_t>(std::min(255.0, u.data<double>()[i]));
    return t;
  };
  return s;
}

OpCase resize_case(const std::string& name, InputSpec x, int64_t oh, int64_t ow, double sub,
                   double div) {
  const Shape xs = x.shape;
  return {name, {x}, [=](OpCtx& c) {
            Tensor out = c.empty({xs[0], oh, ow, xs[3]});
            op::resize_bilinear_tf1(out, c.in[0], sub, div);
            return OpOutputs{{out}, {}};
          }};
}

void add_resize(std::vector<OpCase>& v) {
  v.push_back(resize_case("resize_tf1_u8_down", bytes("x", {2, 9, 11, 3}), 4, 5, 128, 128));
  v.push_back(resize_case("resize_tf1_u8_up", bytes("x", {2, 5, 4, 3}), 13, 9, 128, 128));
  OpCase f = resize_case("resize_tf1_float", nograd("x", {2, 6, 7, 2}), 10, 3, 0, 1);
  v.push_back(f);
}

}  // namespace

void add_vision_cases(std::vector<OpCase>& v) {
  std::vector<OpCase> mine;
  add_conv(mine);
  add_batchnorm(mine);
  add_pool(mine);
  add_relu(mine);
  add_resize(mine);
  for (OpCase& c : mine) {
    c.reference = vision_reference(c.name);
    v.push_back(std::move(c));
  }
}

}  // namespace rae::test::ops
