// The op case table. Each case runs one op's forward and, when ctx.backward(), its backward,
// accumulating into ctx.grad[i] (one per input, in input order; undefined = skip). Shapes are
// small so finite differences over every case take seconds: B=2, T=5, H=2, D=4, C=8.
#include <cmath>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/linear.h"
#include "ops/modulate.h"
#include "ops/norm.h"
#include "ops/op_harness.h"
#include "ops/op_stage1.h"
#include "ops/op_vision.h"
#include "ops/optim.h"

namespace rae::test::ops {

namespace op = rae::ops;

namespace {

constexpr int64_t B = 2, T = 5, H = 2, D = 4, C = 8;
constexpr double kEps = 1e-6;

// grad[i], or grad[i] narrowed like the input view the op saw (chunks of a wider tensor).
Tensor narrow_or_undef(const Tensor& g, int dim, int64_t start, int64_t len) {
  return g.defined() ? g.narrow(dim, start, len) : Tensor();
}

// ---- linear --------------------------------------------------------------------------------

// C = op(A) op(B) with its gradients through matmul itself: for C = A B (no transposes)
// dA = dC B^T and dB = A^T dC; the transposed cases follow by transposing those.
OpCase matmul_case(const std::string& name, bool ta, bool tb, int64_t M, int64_t K, int64_t N) {
  Shape sa = ta ? Shape{K, M} : Shape{M, K};
  Shape sb = tb ? Shape{N, K} : Shape{K, N};
  return {name, {in("A", sa), in("B", sb)}, [=](OpCtx& c) {
            const Tensor &A = c.in[0], &Bm = c.in[1];
            Tensor out = c.empty({M, N});
            op::matmul(out, A, Bm, ta, tb);
            if (c.backward()) {
              const Tensor& dC = c.dout[0];
              if (c.grad[0].defined()) {
                if (!ta)
                  op::matmul(c.grad[0], dC, Bm, false, !tb, 1.0, 1.0);  // dA = dC op(B)^T
                else
                  op::matmul(c.grad[0], Bm, dC, tb, true, 1.0, 1.0);  // dA = op(B) dC^T
              }
              if (c.grad[1].defined()) {
                if (!tb)
                  op::matmul(c.grad[1], A, dC, !ta, false, 1.0, 1.0);  // dB = op(A)^T dC
                else
                  op::matmul(c.grad[1], dC, A, true, ta, 1.0, 1.0);  // dB = dC^T op(A)
              }
            }
            return OpOutputs{{out}, {}};
          }};
}

void add_linear(std::vector<OpCase>& v) {
  v.push_back(matmul_case("matmul_nn", false, false, 3, 4, 5));
  v.push_back(matmul_case("matmul_tn", true, false, 3, 4, 5));
  v.push_back(matmul_case("matmul_nt", false, true, 3, 4, 5));
  v.push_back(matmul_case("matmul_tt", true, true, 3, 4, 5));
  // Batched, with alpha and beta: out = 0.5 A B + 2 C0.
  v.push_back({"matmul_batched_alpha_beta",
               {in("A", {2, 3, 4}), in("B", {2, 4, 5}), in("C0", {2, 3, 5})},
               [](OpCtx& c) {
                 Tensor out = c.in[2].clone();
                 op::matmul(out, c.in[0], c.in[1], false, false, 0.5, 2.0);
                 if (c.backward()) {
                   if (c.grad[0].defined())
                     op::matmul(c.grad[0], c.dout[0], c.in[1], false, true, 0.5, 1.0);
                   if (c.grad[1].defined())
                     op::matmul(c.grad[1], c.in[0], c.dout[0], true, false, 0.5, 1.0);
                   c.accum(2, c.dout[0], 2.0);
                 }
                 return OpOutputs{{out}, {}};
               }});
  auto linear = [](const std::string& name, bool bias, bool strided) -> OpCase {
    // strided: x is columns [3, 3 + C) of a (B, T, 2C) tensor, as a chunk of a wider output
    std::vector<InputSpec> ins = {in("x", strided ? Shape{B, T, 2 * C} : Shape{B, T, C}),
                                  in("w", {6, C})};
    if (bias) ins.push_back(in("b", {6}));
    return {name, ins, [=](OpCtx& c) {
              Tensor x = strided ? c.in[0].narrow(2, 3, C) : c.in[0];
              Tensor b = bias ? c.in[2] : Tensor();
              Tensor out = c.empty({B, T, 6});
              op::linear_forward(out, x, c.in[1], b);
              if (c.backward()) {
                Tensor dx = strided ? narrow_or_undef(c.grad[0], 2, 3, C) : c.grad[0];
                op::linear_backward(dx, c.grad[1], bias ? c.grad[2] : Tensor(), c.dout[0], x,
                                    c.in[1], c.mode);
              }
              return OpOutputs{{out}, {}};
            }};
  };
  v.push_back(linear("linear", true, false));
  v.back().overwrite = {0};  // dx written; dw, db accumulate
  v.push_back(linear("linear_nobias", false, false));
  v.back().overwrite = {0};
  v.push_back(linear("linear_strided_x", true, true));
}

// ---- norm ----------------------------------------------------------------------------------

void add_norm(std::vector<OpCase>& v) {
  auto layernorm = [](const std::string& name, bool affine) -> OpCase {
    std::vector<InputSpec> ins = {in("x", {B, T, C})};
    if (affine) {
      ins.push_back(uniform("w", {C}, 0.5, 1.5));
      ins.push_back(in("b", {C}));
    }
    return {name, ins, [=](OpCtx& c) {
              Tensor w = affine ? c.in[1] : Tensor(), b = affine ? c.in[2] : Tensor();
              Tensor out = c.empty({B, T, C}), mean = c.stat({B * T}), rstd = c.stat({B * T});
              op::layernorm_forward(out, mean, rstd, c.in[0], w, b, kEps);
              if (c.backward())
                op::layernorm_backward(c.grad[0], affine ? c.grad[1] : Tensor(),
                                       affine ? c.grad[2] : Tensor(), c.dout[0], c.in[0], w, mean,
                                       rstd);
              return OpOutputs{{out}, {mean, rstd}};
            }};
  };
  v.push_back(layernorm("layernorm", true));
  v.push_back(layernorm("layernorm_noaffine", false));

  auto rmsnorm = [](const std::string& name, bool weight) -> OpCase {
    std::vector<InputSpec> ins = {in("x", {B, T, C})};
    if (weight) ins.push_back(uniform("w", {C}, 0.5, 1.5));
    return {name, ins, [=](OpCtx& c) {
              Tensor w = weight ? c.in[1] : Tensor();
              Tensor out = c.empty({B, T, C}), rstd = c.stat({B * T});
              op::rmsnorm_forward(out, rstd, c.in[0], w, kEps);
              if (c.backward())
                op::rmsnorm_backward(c.grad[0], weight ? c.grad[1] : Tensor(), c.dout[0], c.in[0],
                                     w, rstd);
              return OpOutputs{{out}, {rstd}};
            }};
  };
  v.push_back(rmsnorm("rmsnorm", true));
  v.push_back(rmsnorm("rmsnorm_noweight", false));

  // Fused RMSNorm + modulate. per_token: (B, T, C) conditioning, else (B, C); chunked: shift and
  // scale are chunks 0 and 1 of a (.., 3C) adaLN output.
  auto rms_mod = [](const std::string& name, bool per_token, bool shift, bool weight, bool chunked,
                    int64_t ada_chunks = 3) -> OpCase {
    Shape cs = per_token ? Shape{B, T, C} : Shape{B, C};
    Shape ada = per_token ? Shape{B, T, ada_chunks * C} : Shape{B, ada_chunks * C};
    std::vector<InputSpec> ins = {in("x", {B, T, C})};
    ins.push_back(weight ? uniform("w", {C}, 0.5, 1.5) : nograd("w_unused", {1}));
    if (chunked) {
      ins.push_back(in("ada", ada));
    } else {
      ins.push_back(shift ? in("shift", cs) : nograd("shift_unused", {1}));
      ins.push_back(in("scale", cs));
    }
    return {name, ins, [=](OpCtx& c) {
              const int cd = per_token ? 2 : 1;
              Tensor w = weight ? c.in[1] : Tensor();
              Tensor sh, sc, dsh, dsc;
              if (chunked) {
                sh = shift ? c.in[2].narrow(cd, 0, C) : Tensor();
                sc = c.in[2].narrow(cd, C, C);
                if (c.backward()) {
                  dsh = shift ? narrow_or_undef(c.grad[2], cd, 0, C) : Tensor();
                  dsc = narrow_or_undef(c.grad[2], cd, C, C);
                }
              } else {
                sh = shift ? c.in[2] : Tensor();
                sc = c.in[3];
                if (c.backward()) {
                  dsh = shift ? c.grad[2] : Tensor();
                  dsc = c.grad[3];
                }
              }
              Tensor out = c.empty({B, T, C}), rstd = c.stat({B * T});
              op::rmsnorm_modulate_forward(out, rstd, c.in[0], w, sh, sc, kEps);
              if (c.backward())
                op::rmsnorm_modulate_backward(c.grad[0], weight ? c.grad[1] : Tensor(), dsh, dsc,
                                              c.dout[0], c.in[0], w, sc, rstd, c.mode);
              return OpOutputs{{out}, {rstd}};
            }};
  };
  // Overwrite: dshift and dscale are written (x's gradient, a residual stream, and w's
  // accumulate); the 2-chunk cases write all of the strided adaLN gradient.
  v.push_back(rms_mod("rmsnorm_modulate_sample", false, true, true, false));
  v.back().overwrite = {2, 3};
  v.push_back(rms_mod("rmsnorm_modulate_token", true, true, true, false));
  v.back().overwrite = {2, 3};
  v.push_back(rms_mod("rmsnorm_modulate_noshift_noweight", false, false, false, false));
  v.back().overwrite = {3};
  v.push_back(rms_mod("rmsnorm_modulate_chunked_sample", false, true, true, true));
  v.push_back(rms_mod("rmsnorm_modulate_chunked_token", true, true, false, true));
  v.push_back(rms_mod("rmsnorm_modulate_chunked2_sample", false, true, true, true, 2));
  v.back().overwrite = {2};
  v.push_back(rms_mod("rmsnorm_modulate_chunked2_token", true, true, true, true, 2));
  v.back().overwrite = {2};
}

// ---- activation ----------------------------------------------------------------------------

void add_activation(std::vector<OpCase>& v) {
  auto gelu = [](const std::string& name, op::GeluKind kind) -> OpCase {
    return {name, {in("x", {B, T, C})}, [=](OpCtx& c) {
              Tensor out = c.empty({B, T, C});
              op::gelu_forward(out, c.in[0], kind);
              if (c.backward()) op::gelu_backward(c.grad[0], c.dout[0], c.in[0], kind);
              return OpOutputs{{out}, {}};
            }};
  };
  v.push_back(gelu("gelu_exact", op::GeluKind::Exact));
  v.push_back(gelu("gelu_tanh", op::GeluKind::Tanh));
  v.push_back({"silu", {in("x", {B, T, C})}, [](OpCtx& c) {
                 Tensor out = c.empty({B, T, C});
                 op::silu_forward(out, c.in[0]);
                 if (c.backward()) op::silu_backward(c.grad[0], c.dout[0], c.in[0]);
                 return OpOutputs{{out}, {}};
               }});
  v.push_back({"swiglu", {in("x12", {B, T, 2 * C})}, [](OpCtx& c) {
                 Tensor out = c.empty({B, T, C});
                 op::swiglu_forward(out, c.in[0]);
                 if (c.backward()) op::swiglu_backward(c.grad[0], c.dout[0], c.in[0], c.mode);
                 return OpOutputs{{out}, {}};
               }});
  v.back().overwrite = {0};
}

// ---- attention -----------------------------------------------------------------------------

void add_attention(std::vector<OpCase>& v) {
  v.push_back({"softmax", {in("x", {B, T, 7})}, [](OpCtx& c) {
                 Tensor out = c.empty({B, T, 7});
                 op::softmax_forward(out, c.in[0]);
                 if (c.backward()) op::softmax_backward(c.grad[0], c.dout[0], out);
                 return OpOutputs{{out}, {}};
               }});
  v.push_back({"attention", {in("qkv", {B, T, 3, H, D})}, [](OpCtx& c) {
                 const double scale = 1.0 / std::sqrt(static_cast<double>(D));
                 Tensor out = c.empty({B, T, H, D}), lse = c.stat({B, H, T});
                 op::attention_forward(out, lse, c.in[0], scale);
                 if (c.backward())
                   op::attention_backward(c.grad[0], c.dout[0], c.in[0], out, lse, scale, c.mode);
                 return OpOutputs{{out}, {lse}};
               }});
  v.back().overwrite = {0};
  // RoPE on a 2x3 token grid, head dim 8; tables built by rope2d_tables (F32, fixed).
  constexpr int64_t gh = 2, gw = 3, hd = 8, Tr = gh * gw;
  auto table = [](bool cos_table) {
    InputSpec s{cos_table ? "cos" : "sin", {Tr, hd}, false, {}, DType::F32};
    s.make = [cos_table](uint64_t) {
      Tensor cs = Tensor::empty({Tr, hd}), sn = Tensor::empty({Tr, hd});
      op::rope2d_tables(cs, sn, gh, gw, hd, 10000.0);
      return cos_table ? cs : sn;
    };
    return s;
  };
  v.push_back(
      {"rope_apply", {in("qkv", {B, Tr, 3, H, hd}), table(true), table(false)}, [](OpCtx& c) {
         Tensor out = c.in[0].clone();
         op::rope_apply(out, c.in[1], c.in[2]);
         if (c.backward()) {
           Tensor g = c.dout[0].clone();
           op::rope_apply_backward(g, c.in[1], c.in[2]);
           c.accum(0, g);
         }
         return OpOutputs{{out}, {}};
       }});
}

// ---- modulate ------------------------------------------------------------------------------

void add_modulate(std::vector<OpCase>& v) {
  auto modulate = [](const std::string& name, bool per_token, bool shift, bool chunked) -> OpCase {
    Shape cs = per_token ? Shape{B, T, C} : Shape{B, C};
    Shape ada = per_token ? Shape{B, T, 2 * C} : Shape{B, 2 * C};
    std::vector<InputSpec> ins = {in("x", {B, T, C})};
    if (chunked) {
      ins.push_back(in("ada", ada));
    } else {
      ins.push_back(shift ? in("shift", cs) : nograd("shift_unused", {1}));
      ins.push_back(in("scale", cs));
    }
    return {name, ins, [=](OpCtx& c) {
              const int cd = per_token ? 2 : 1;
              Tensor sh, sc, dsh, dsc;
              if (chunked) {
                sh = c.in[1].narrow(cd, C, C);  // [scale | shift] order, to vary the offsets
                sc = c.in[1].narrow(cd, 0, C);
                if (c.backward()) {
                  dsh = narrow_or_undef(c.grad[1], cd, C, C);
                  dsc = narrow_or_undef(c.grad[1], cd, 0, C);
                }
              } else {
                sh = shift ? c.in[1] : Tensor();
                sc = c.in[2];
                if (c.backward()) {
                  dsh = shift ? c.grad[1] : Tensor();
                  dsc = c.grad[2];
                }
              }
              Tensor out = c.empty({B, T, C});
              op::modulate_forward(out, c.in[0], sh, sc);
              if (c.backward()) op::modulate_backward(c.grad[0], dsh, dsc, c.dout[0], c.in[0], sc);
              return OpOutputs{{out}, {}};
            }};
  };
  v.push_back(modulate("modulate_sample", false, true, false));
  v.push_back(modulate("modulate_token", true, true, false));
  v.push_back(modulate("modulate_noshift", false, false, false));
  v.push_back(modulate("modulate_chunked_token", true, true, true));

  auto gate = [](const std::string& name, bool per_token) -> OpCase {
    Shape cs = per_token ? Shape{B, T, C} : Shape{B, C};
    return {name, {in("x", {B, T, C}), in("y", {B, T, C}), in("gate", cs)}, [](OpCtx& c) {
              Tensor x = c.in[0].clone();
              op::gate_residual_forward(x, c.in[1], c.in[2]);
              if (c.backward()) {
                c.accum(0, c.dout[0]);  // the residual passes dres through unchanged
                op::gate_residual_backward(c.grad[1], c.grad[2], c.dout[0], c.in[1], c.in[2],
                                           c.mode);
              }
              return OpOutputs{{x}, {}};
            }};
  };
  v.push_back(gate("gate_residual_sample", false));
  v.back().overwrite = {1, 2};  // dy, dgate written
  v.push_back(gate("gate_residual_token", true));
  v.back().overwrite = {1, 2};
}

// ---- embed ---------------------------------------------------------------------------------

void add_embed(std::vector<OpCase>& v) {
  v.push_back(
      {"fourier_features", {uniform("t", {4}, 0.0, 1.0, false), nograd("W", {6})}, [](OpCtx& c) {
         Tensor out = c.empty({4, 12});
         op::fourier_features(out, c.in[0], c.in[1]);
         return OpOutputs{{out}, {}};
       }});
  v.push_back({"embedding", {in("table", {7, C}), labels("labels", {3, 1, 3, 6, 0})}, [](OpCtx& c) {
                 Tensor out = c.empty({5, C});
                 op::embedding_forward(out, c.in[0], c.in[1]);
                 if (c.backward()) op::embedding_backward(c.grad[0], c.dout[0], c.in[1]);
                 return OpOutputs{{out}, {}};
               }});
  // img (2, 3, 4, 6), patch 2 -> tokens (2, 6, 12); each is the other's transpose.
  v.push_back({"patchify", {in("img", {2, 3, 4, 6})}, [](OpCtx& c) {
                 Tensor tok = c.empty({2, 6, 12});
                 op::patchify(tok, c.in[0], 2);
                 if (c.backward()) {
                   Tensor g = c.empty({2, 3, 4, 6});
                   op::unpatchify(g, c.dout[0], 2);
                   c.accum(0, g);
                 }
                 return OpOutputs{{tok}, {}};
               }});
  v.push_back({"unpatchify", {in("tokens", {2, 6, 12})}, [](OpCtx& c) {
                 Tensor img = c.empty({2, 3, 4, 6});
                 op::unpatchify(img, c.in[0], 2);
                 if (c.backward()) {
                   Tensor g = c.empty({2, 6, 12});
                   op::patchify(g, c.dout[0], 2);
                   c.accum(0, g);
                 }
                 return OpOutputs{{img}, {}};
               }});
}

// ---- elementwise ---------------------------------------------------------------------------

void add_elementwise(std::vector<OpCase>& v) {
  v.push_back({"add_inplace", {in("y", {B, T, C}), in("x", {B, T, C})}, [](OpCtx& c) {
                 Tensor y = c.in[0].clone();
                 op::add_(y, c.in[1], 0.7);
                 if (c.backward()) {
                   c.accum(0, c.dout[0]);
                   c.accum(1, c.dout[0], 0.7);
                 }
                 return OpOutputs{{y}, {}};
               }});
  v.push_back({"scale_inplace", {in("x", {B, T, C})}, [](OpCtx& c) {
                 Tensor x = c.in[0].clone();
                 op::scale_(x, -1.3);
                 if (c.backward()) c.accum(0, c.dout[0], -1.3);
                 return OpOutputs{{x}, {}};
               }});
  v.push_back({"add", {in("a", {B, T, C}), in("b", {B, T, C})}, [](OpCtx& c) {
                 Tensor out = c.empty({B, T, C});
                 op::add(out, c.in[0], c.in[1]);
                 if (c.backward()) {
                   c.accum(0, c.dout[0]);
                   c.accum(1, c.dout[0]);
                 }
                 return OpOutputs{{out}, {}};
               }});
  v.push_back({"add_rowwise", {in("x", {B, T, C}), in("row", {C})}, [](OpCtx& c) {
                 Tensor out = c.empty({B, T, C});
                 op::add_rowwise(out, c.in[0], c.in[1]);
                 if (c.backward()) {
                   c.accum(0, c.dout[0]);
                   op::add_rowwise_backward(c.grad[1], c.dout[0]);
                 }
                 return OpOutputs{{out}, {}};
               }});
  // A (T, C) table over (B, T, C): the position-embedding add.
  v.push_back({"add_rowwise_table", {in("x", {B, T, C}), in("table", {T, C})}, [](OpCtx& c) {
                 Tensor out = c.empty({B, T, C});
                 op::add_rowwise(out, c.in[0], c.in[1]);
                 if (c.backward()) {
                   c.accum(0, c.dout[0]);
                   op::add_rowwise_backward(c.grad[1], c.dout[0]);
                 }
                 return OpOutputs{{out}, {}};
               }});
  v.push_back({"sum_squares", {in("x", {B, T, C})}, [](OpCtx& c) {
                 Tensor out = OpCtx::scalar(op::sum_squares(c.in[0]));
                 if (c.backward()) c.accum(0, c.in[0], 2.0 * c.dout_scalar(0));
                 return OpOutputs{{out}, {}};
               }});
  v.push_back({"all_finite", {nograd("x", {B, T, C})}, [](OpCtx& c) {
                 return OpOutputs{{OpCtx::scalar(op::all_finite(c.in[0]) ? 1.0 : 0.0)}, {}};
               }});
  v.push_back({"mse", {in("pred", {B, T, C}), in("target", {B, T, C})}, [](OpCtx& c) {
                 Tensor out = OpCtx::scalar(op::mse_forward(c.in[0], c.in[1]));
                 if (c.backward()) {
                   const double s = c.dout_scalar(0);
                   op::mse_backward(c.grad[0], c.in[0], c.in[1], s);
                   op::mse_backward(c.grad[1], c.in[1], c.in[0], s);  // symmetric in its inputs
                 }
                 return OpOutputs{{out}, {}};
               }});
  // Forward only: the training step never differentiates through the interpolation.
  InputSpec t = uniform("t", {B}, 0.0, 1.0, false);
  t.fixed = DType::F32;
  v.push_back(
      {"flow_interpolate", {nograd("x", {B, 3, 4}), nograd("eps", {B, 3, 4}), t}, [](OpCtx& c) {
         Tensor xt = c.empty({B, 3, 4}), target = c.empty({B, 3, 4});
         op::flow_interpolate(xt, target, c.in[0], c.in[1], c.in[2]);
         return OpOutputs{{xt, target}, {}};
       }});
}

// ---- optim ---------------------------------------------------------------------------------

void add_optim(std::vector<OpCase>& v) {
  OpCase adamw{"adamw_step",
               {nograd("param", {3, 7}), nograd("grad", {3, 7}), nograd("m", {3, 7}),
                uniform("v", {3, 7}, 0.01, 1.0, false)},
               [](OpCtx& c) {
                 Tensor p = c.in[0].clone(), m = c.in[2].clone(), vv = c.in[3].clone();
                 op::AdamWParams ap;
                 ap.lr = 1e-2;
                 ap.weight_decay = 0.1;
                 ap.step = 3;
                 ap.grad_scale = 0.5;
                 op::adamw_step(p, c.in[1], m, vv, ap);
                 return OpOutputs{{p, m, vv}, {}};
               }};
  adamw.bf16 = false;  // optimizer state is F32
  v.push_back(adamw);
  OpCase ema{"ema_update", {nograd("ema", {3, 7}), nograd("param", {3, 7})}, [](OpCtx& c) {
               Tensor e = c.in[0].clone();
               op::ema_update(e, c.in[1], 0.9);
               return OpOutputs{{e}, {}};
             }};
  ema.bf16 = false;
  v.push_back(ema);
}

std::vector<OpCase> build_table() {
  std::vector<OpCase> v;
  add_linear(v);
  add_norm(v);
  add_activation(v);
  add_attention(v);
  add_modulate(v);
  add_embed(v);
  add_elementwise(v);
  add_optim(v);
  attach_references(v);
  add_vision_cases(v);  // op_cases_vision.cpp, references attached there
  add_stage1_cases(v);  // op_cases_stage1.cpp, likewise
  return v;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> table = build_table();
  return table;
}

}  // namespace rae::test::ops
