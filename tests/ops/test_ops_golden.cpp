// Golden tests: every op in src/ops/ against PyTorch float64 references written by
// tests/reference/make_op_goldens.py into tests/goldens/ops/<case>.safetensors.
//
// Each op runs twice, in F64 and in F32, on the same inputs (the script rounds its inputs to
// float32-representable values, so the F32 run sees exactly the inputs the reference saw).
// Tolerances, as max |got - ref| <= atol * max|ref| + rtol * |ref| elementwise:
// - F64: 1e-10 / 1e-10. Both sides compute in double; only the summation order differs
//   (errors ~1e-15), so this catches any formula difference while leaving room for reordering.
// - F32: per op, stated at each test: 1e-5 for ops whose output sums a handful of terms (float32
//   unit roundoff 6e-8 times short reductions and the conditioning of the op), looser where a
//   reduction is longer or the op amplifies rounding (attention 2e-5), tighter where an op only
//   moves or scales values (0 for patchify).
// Gradient buffers start from non-zero random values: backward ops must ACCUMULATE (+=), so the
// expected value is init + reference gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/golden_check.h"
#include "ops/linear.h"
#include "ops/modulate.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "support/util.h"

using namespace rae;
namespace st = rae::safetensors;

using namespace rae::test::golden;

// ---------------------------------------------------------------------------- linear.h

// F32: rtol 1e-5 / atol 1e-5 * max: dot products of 5-7 terms of O(1) values.
TEST(OpsGolden, Linear) {
  for (const char* name : {"linear", "linear_nobias"}) {
    Golden g(name);
    const bool bias = g.has("b");
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-5});
      Tensor x = g.in("x", dt), w = g.in("w", dt), b = bias ? g.in("b", dt) : Tensor();
      Tensor out = empty_like(g.ref("out"), dt);
      ops::linear_forward(out, x, w, b);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x"), dw = gc.make("w"), db = bias ? gc.make("b") : Tensor();
      ops::linear_backward(dx, dw, db, g.in("dout", dt), x, w);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-5 / atol 1e-5 * max: 5-6 term dot products, alpha/beta combination.
TEST(OpsGolden, MatmulBatchedTransposes) {
  Golden g("matmul");
  const double alpha = g.param("alpha"), beta = g.param("beta");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-5});
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const std::string tag{'t', static_cast<char>('0' + ta), static_cast<char>('0' + tb)};
        Tensor C = g.in("C0_" + tag, dt);
        ops::matmul(C, g.in("A_" + tag, dt), g.in("B_" + tag, dt), ta, tb, alpha, beta);
        expect_close(C, g.ref("C_" + tag), tol, "matmul " + tag);
      }
    }
    // 2-D product and its gradients expressed as matmuls (what linear_backward does).
    Tensor A = g.in("A2", dt), B = g.in("B2", dt), dC = g.in("dC2", dt);
    Tensor C = empty_like(g.ref("C2"), dt);
    ops::matmul(C, A, B, false, false);
    expect_close(C, g.ref("C2"), tol, "matmul 2d");
    Tensor dA = empty_like(g.ref("dA2"), dt), dB = empty_like(g.ref("dB2"), dt);
    ops::matmul(dA, dC, B, false, true);
    ops::matmul(dB, A, dC, true, false);
    expect_close(dA, g.ref("dA2"), tol, "matmul dA = dC @ B^T");
    expect_close(dB, g.ref("dB2"), tol, "matmul dB = A^T @ dC");
  }
}

// ---------------------------------------------------------------------------- norm.h

// F32: rtol 1e-5 / atol 1e-5 * max: 12-element mean/variance reductions; the backward subtracts
// two row sums, so near-zero gradient entries need the atol.
TEST(OpsGolden, LayerNorm) {
  for (const char* name : {"layernorm", "layernorm_noaffine"}) {
    Golden g(name);
    const bool affine = g.has("w");
    const double eps = g.param("eps");
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-5});
      Tensor x = g.in("x", dt);
      Tensor w = affine ? g.in("w", dt) : Tensor(), b = affine ? g.in("b", dt) : Tensor();
      Tensor out = empty_like(g.ref("out"), dt);
      Tensor mean = empty_like(g.ref("mean"), stat_dtype(dt));
      Tensor rstd = empty_like(g.ref("rstd"), stat_dtype(dt));
      ops::layernorm_forward(out, mean, rstd, x, w, b, eps);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      expect_close(mean, g.ref("mean"), tol, std::string(name) + " mean");
      expect_close(rstd, g.ref("rstd"), tol, std::string(name) + " rstd");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x");
      Tensor dw = affine ? gc.make("w") : Tensor(), db = affine ? gc.make("b") : Tensor();
      ops::layernorm_backward(dx, dw, db, g.in("dout", dt), x, w, mean, rstd);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-5 / atol 1e-5 * max (as LayerNorm).
TEST(OpsGolden, RMSNorm) {
  Golden g("rmsnorm");
  const double eps = g.param("eps");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-5});
    Tensor x = g.in("x", dt), w = g.in("w", dt);
    Tensor out = empty_like(g.ref("out"), dt), rstd = empty_like(g.ref("rstd"), stat_dtype(dt));
    ops::rmsnorm_forward(out, rstd, x, w, eps);
    expect_close(out, g.ref("out"), tol, "rmsnorm out");
    expect_close(rstd, g.ref("rstd"), tol, "rmsnorm rstd");
    GradCheck gc(g, dt, tol);
    Tensor dx = gc.make("x"), dw = gc.make("w");
    ops::rmsnorm_backward(dx, dw, g.in("dout", dt), x, w, rstd);
    gc.check("rmsnorm");
  }
}

// F32: rtol 1e-5 / atol 1e-5 * max: RMSNorm plus one multiply-add; dscale/dshift sum over T.
TEST(OpsGolden, RMSNormModulate) {
  for (const char* name :
       {"rmsnorm_modulate_sample", "rmsnorm_modulate_token", "rmsnorm_modulate_noshift"}) {
    Golden g(name);
    const bool with_shift = g.has("shift");
    const double eps = g.param("eps");
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-5});
      Tensor x = g.in("x", dt), w = g.in("w", dt), scale = g.in("scale", dt);
      Tensor shift = with_shift ? g.in("shift", dt) : Tensor();
      Tensor out = empty_like(g.ref("out"), dt), rstd = empty_like(g.ref("rstd"), stat_dtype(dt));
      ops::rmsnorm_modulate_forward(out, rstd, x, w, shift, scale, eps);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      expect_close(rstd, g.ref("rstd"), tol, std::string(name) + " rstd");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x"), dw = gc.make("w"), dscale = gc.make("scale");
      Tensor dshift = with_shift ? gc.make("shift") : Tensor();
      ops::rmsnorm_modulate_backward(dx, dw, dshift, dscale, g.in("dout", dt), x, w, scale, rstd);
      gc.check(name);
    }
  }
}

// ---------------------------------------------------------------------------- activation.h

// F32: rtol 1e-5 / atol 1e-6 * max: pointwise functions (erf/tanh/exp in float32 are accurate to
// a few ulp; the tanh form's derivative combines several terms).
TEST(OpsGolden, Gelu) {
  for (auto [name, kind] : {std::pair{"gelu_exact", ops::GeluKind::Exact},
                            std::pair{"gelu_tanh", ops::GeluKind::Tanh}}) {
    Golden g(name);
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-6});
      Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
      ops::gelu_forward(out, x, kind);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x");
      ops::gelu_backward(dx, g.in("dout", dt), x, kind);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-5 / atol 1e-6 * max (pointwise).
TEST(OpsGolden, Silu) {
  Golden g("silu");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-6});
    Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
    ops::silu_forward(out, x);
    expect_close(out, g.ref("out"), tol, "silu out");
    GradCheck gc(g, dt, tol);
    Tensor dx = gc.make("x");
    ops::silu_backward(dx, g.in("dout", dt), x);
    gc.check("silu");
  }
}

// F32: rtol 1e-5 / atol 1e-6 * max (pointwise).
TEST(OpsGolden, SwiGLU) {
  Golden g("swiglu");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-6});
    Tensor x12 = g.in("x12", dt), out = empty_like(g.ref("out"), dt);
    ops::swiglu_forward(out, x12);
    expect_close(out, g.ref("out"), tol, "swiglu out");
    GradCheck gc(g, dt, tol);
    Tensor dx12 = gc.make("x12");
    ops::swiglu_backward(dx12, g.in("dout", dt), x12);
    gc.check("swiglu");
  }
}

// ---------------------------------------------------------------------------- attention.h

// F32: rtol 1e-5 / atol 1e-6 * max: exp of logits up to ~10 and a 9-term normalising sum.
TEST(OpsGolden, Softmax) {
  Golden g("softmax");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-6});
    Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
    ops::softmax_forward(out, x);
    expect_close(out, g.ref("out"), tol, "softmax out");
    GradCheck gc(g, dt, tol);
    Tensor dx = gc.make("x");
    ops::softmax_backward(dx, g.in("dout", dt), out);
    gc.check("softmax");
  }
}

// F32: rtol 2e-5 / atol 2e-5 * max: two chained reductions (QK^T over D = 8, then P V over
// T = 12) with an online-softmax rescaling; the backward adds a third (dP row sums).
// Two cases: B2 T12 H2 D8, and B1 T67 H2 D16 (crosses a 64-token tile boundary).
TEST(OpsGolden, Attention) {
  for (const char* name : {"attention", "attention_long"}) {
    Golden g(name);
    const double scale = g.param("scale");
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {2e-5, 2e-5});
      Tensor qkv = g.in("qkv", dt);
      Tensor out = empty_like(g.ref("out"), dt), lse = empty_like(g.ref("lse"), stat_dtype(dt));
      ops::attention_forward(out, lse, qkv, scale);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      expect_close(lse, g.ref("lse"), tol, std::string(name) + " lse");
      GradCheck gc(g, dt, tol);
      Tensor dqkv = gc.make("qkv");
      ops::attention_backward(dqkv, g.in("dout", dt), qkv, out, lse, scale);
      gc.check(name);
    }
  }
}

// Tables: F32 by contract; atol 1e-6 (angles up to 3 rad; cos/sin of a float32-rounded angle).
// Apply: the rotation uses F32 tables even for F64 activations, so both dtypes get
// rtol 1e-6 / atol 1e-6 * max (table rounding, not the activation dtype, dominates).
TEST(OpsGolden, Rope2D) {
  for (const char* name : {"rope", "rope_nonsquare"}) {
    Golden g(name);
    const auto gh = static_cast<int64_t>(g.param("grid_h"));
    const auto gw = static_cast<int64_t>(g.param("grid_w"));
    const auto hd = static_cast<int64_t>(g.param("head_dim"));
    Tensor cos = Tensor::empty({gh * gw, hd}, DType::F32),
           sin = Tensor::empty({gh * gw, hd}, DType::F32);
    ops::rope2d_tables(cos, sin, gh, gw, hd, g.param("theta"));
    expect_close(cos, g.ref("cos"), {0, 1e-6}, std::string(name) + " cos table");
    expect_close(sin, g.ref("sin"), {0, 1e-6}, std::string(name) + " sin table");
    for (DType dt : kDtypes) {
      Tol tol{1e-6, 1e-6};
      Tensor qkv = g.in("qkv", dt);
      ops::rope_apply(qkv, cos, sin);
      expect_close(qkv, g.ref("out"), tol, std::string(name) + " apply");
      // The backward rotates the upstream gradient in place (v passes through unchanged).
      Tensor dqkv = g.in("dout", dt);
      ops::rope_apply_backward(dqkv, cos, sin);
      expect_close(dqkv, g.ref("dqkv"), tol, std::string(name) + " backward");
    }
  }
}

// The release's own float32 tables at DiT^DH-S's body configuration (16 x 16 tokens, head_dim
// 64): atol 1e-6 (angles up to 15 rad; both sides float32, so a few ulp of the angle).
TEST(OpsGolden, Rope2DTablesRealConfig) {
  Golden g("rope_tables_16x16_d64");
  Tensor cos = Tensor::empty({256, 64}, DType::F32), sin = Tensor::empty({256, 64}, DType::F32);
  ops::rope2d_tables(cos, sin, 16, 16, 64, g.param("theta"));
  expect_close(cos, g.ref("cos"), {0, 1e-6}, "rope 16x16 d64 cos table");
  expect_close(sin, g.ref("sin"), {0, 1e-6}, "rope 16x16 d64 sin table");
}

// ---------------------------------------------------------------------------- modulate.h

// F32: rtol 1e-5 / atol 1e-6 * max: one multiply-add; dshift/dscale sum over T = 3 tokens.
TEST(OpsGolden, Modulate) {
  for (const char* name : {"modulate_sample", "modulate_token", "modulate_noshift"}) {
    Golden g(name);
    const bool with_shift = g.has("shift");
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-6});
      Tensor x = g.in("x", dt), scale = g.in("scale", dt);
      Tensor shift = with_shift ? g.in("shift", dt) : Tensor();
      Tensor out = empty_like(g.ref("out"), dt);
      ops::modulate_forward(out, x, shift, scale);
      expect_close(out, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dx = gc.make("x"), dscale = gc.make("scale");
      Tensor dshift = with_shift ? gc.make("shift") : Tensor();
      ops::modulate_backward(dx, dshift, dscale, g.in("dout", dt), x, scale);
      gc.check(name);
    }
  }
}

// F32: rtol 1e-5 / atol 1e-6 * max (one multiply-add; dgate sums over T = 3).
TEST(OpsGolden, GateResidual) {
  for (const char* name : {"gate_sample", "gate_token"}) {
    Golden g(name);
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-5, 1e-6});
      Tensor x = g.in("x", dt), y = g.in("y", dt), gate = g.in("gate", dt);
      ops::gate_residual_forward(x, y, gate);
      expect_close(x, g.ref("out"), tol, std::string(name) + " out");
      GradCheck gc(g, dt, tol);
      Tensor dy = gc.make("y"), dgate = gc.make("gate");
      ops::gate_residual_backward(dy, dgate, g.in("dres", dt), y, gate);
      gc.check(name);
    }
  }
}

// ---------------------------------------------------------------------------- embed.h

// F32: atol 1e-6 (values in [-1, 1]; float32 sin/cos of arguments up to 15).
TEST(OpsGolden, SinCosPosEmbed2D) {
  for (const char* name :
       {"sincos_pos_embed", "sincos_pos_embed_nonsquare", "sincos_pos_embed_16x16"}) {
    Golden g(name);
    for (DType dt : kDtypes) {
      Tensor out = empty_like(g.ref("out"), dt);
      ops::sincos_pos_embed_2d(out, static_cast<int64_t>(g.param("grid_h")),
                               static_cast<int64_t>(g.param("grid_w")));
      expect_close(out, g.ref("out"), tol_for(dt, {0, 1e-6}), name);
    }
  }
}

// F32: atol 1e-5 (values in [-1, 1]; the angle 2*pi*t*W reaches ~15 rad, and its float32
// rounding (~1e-6 rad) passes straight into sin/cos).
TEST(OpsGolden, FourierFeatures) {
  Golden g("fourier_features");
  for (DType dt : kDtypes) {
    Tensor out = empty_like(g.ref("out"), dt);
    ops::fourier_features(out, g.in("t", dt), g.in("W", dt));
    expect_close(out, g.ref("out"), tol_for(dt, {0, 1e-5}), "fourier_features");
  }
}

// Exact copies forward; the backward sums at most 3 rows (labels repeat): F32 rtol 1e-6.
TEST(OpsGolden, Embedding) {
  Golden g("embedding");
  Tensor labels = g.ref("labels").clone();
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-6, 1e-6});
    Tensor out = empty_like(g.ref("out"), dt);
    ops::embedding_forward(out, g.in("table", dt), labels);
    expect_close(out, g.ref("out"), {0, 0}, "embedding out");
    GradCheck gc(g, dt, tol);
    Tensor dtable = gc.make("table");
    ops::embedding_backward(dtable, g.in("dout", dt), labels);
    gc.check("embedding");
  }
}

// Pure permutations: exact.
TEST(OpsGolden, PatchifyUnpatchify) {
  Golden g("patchify");
  const auto p = static_cast<int64_t>(g.param("p"));
  for (DType dt : kDtypes) {
    Tensor tokens = empty_like(g.ref("tokens"), dt);
    ops::patchify(tokens, g.in("img", dt), p);
    expect_close(tokens, g.ref("tokens"), {0, 0}, "patchify");
    Tensor img = empty_like(g.ref("img"), dt);
    ops::unpatchify(img, g.in("tokens", dt), p);
    expect_close(img, g.ref("img"), {0, 0}, "unpatchify");
  }
}

// ---------------------------------------------------------------------------- elementwise.h

// The loss is returned in double: F32 rtol 1e-6 (60 squared differences summed in double).
// The gradient is pointwise: F32 rtol 1e-6.
TEST(OpsGolden, MseLoss) {
  Golden g("mse");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-6, 1e-6});
    Tensor pred = g.in("pred", dt), target = g.in("target", dt);
    double loss = ops::mse_forward(pred, target);
    double ref = g.ref("loss").item(0);
    EXPECT_NEAR(loss, ref, tol.rtol * std::fabs(ref)) << dtype_name(dt);
    GradCheck gc(g, dt, tol);
    Tensor dpred = gc.make("pred");
    ops::mse_backward(dpred, pred, target);
    gc.check("mse");
    // `scale` multiplies the gradient (loss scaling, accumulation steps).
    Tensor d2 = Tensor::zeros(pred.shape(), dt);
    ops::mse_backward(d2, pred, target, 0.25);
    Tensor expect = plus(Tensor::zeros(pred.shape(), DType::F64), g.ref("dpred"), 0.25);
    expect_close(d2, expect, tol, "mse dpred scale 0.25");
  }
}

// F32: rtol 1e-6 / atol 1e-6 * max (one multiply-add per element).
TEST(OpsGolden, FlowInterpolate) {
  Golden g("flow_interpolate");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-6, 1e-6});
    Tensor xt = empty_like(g.ref("xt"), dt), target = empty_like(g.ref("target"), dt);
    // t is F32 by contract; the script's t values are float32-representable.
    ops::flow_interpolate(xt, target, g.in("x", dt), g.in("eps", dt), g.in("t", DType::F32));
    expect_close(xt, g.ref("xt"), tol, "flow_interpolate xt");
    expect_close(target, g.ref("target"), tol, "flow_interpolate target");
  }
}

// add_rowwise is one add (F32 rtol 1e-7); sum_squares returns double (F32 rtol 1e-6).
TEST(OpsGolden, AddRowwiseAndSumSquares) {
  Golden g("add_rowwise");
  for (DType dt : kDtypes) {
    Tensor x = g.in("x", dt), out = empty_like(g.ref("out"), dt);
    ops::add_rowwise(out, x, g.in("row", dt));
    expect_close(out, g.ref("out"), tol_for(dt, {1e-7, 1e-7}), "add_rowwise");
    double ss = ops::sum_squares(x), ref = g.ref("sum_squares").item(0);
    EXPECT_NEAR(ss, ref, tol_for(dt, {1e-6, 0}).rtol * ref) << dtype_name(dt);
    EXPECT_TRUE(ops::all_finite(x));
  }
}

// ---------------------------------------------------------------------------- optim.h

// torch.optim.AdamW over 5 steps. F32: rtol 1e-5 / atol 1e-5 * max: each step's update is
// lr * m_hat / (sqrt(v_hat) + eps) with float32 rounding in m, v and the division, compounding
// over steps. The second run feeds 2 * grad with grad_scale 0.5 (exact in binary floating point).
TEST(OpsGolden, AdamW) {
  Golden g("adamw");
  const int steps = static_cast<int>(g.param("steps"));
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-5, 1e-5});
    for (double grad_scale : {1.0, 0.5}) {
      Tensor param = g.in("param0", dt);
      Tensor m = Tensor::zeros(param.shape(), dt), v = Tensor::zeros(param.shape(), dt);
      for (int s = 1; s <= steps; ++s) {
        ops::AdamWParams p;
        p.lr = g.param("lr");
        p.beta1 = g.param("beta1");
        p.beta2 = g.param("beta2");
        p.eps = g.param("eps");
        p.weight_decay = g.param("weight_decay");
        p.step = s;
        p.grad_scale = grad_scale;
        Tensor grad = g.in(key("grad", s), dt);
        if (grad_scale != 1.0) ops::scale_(grad, 1.0 / grad_scale);
        ops::adamw_step(param, grad, m, v, p);
        std::string at = " step " + std::to_string(s) + " grad_scale " + std::to_string(grad_scale);
        expect_close(param, g.ref(key("param", s)), tol, "adamw param" + at);
        expect_close(m, g.ref(key("m", s)), tol, "adamw m" + at);
        expect_close(v, g.ref(key("v", s)), tol, "adamw v" + at);
      }
    }
  }
}

// torch.nn.utils.clip_grad_norm_ over 3 tensors: the global norm from sum_squares, the factor
// from clip_coefficient, applied with scale_. F32: rtol 1e-6 (a norm over 24 values and a scale).
TEST(OpsGolden, ClipGradNorm) {
  for (const char* name : {"clip_grad", "clip_grad_noclip"}) {
    Golden g(name);
    for (DType dt : kDtypes) {
      Tol tol = tol_for(dt, {1e-6, 1e-6});
      Tensor grads[3];
      double ss = 0;
      for (int i = 0; i < 3; ++i) {
        grads[i] = g.in(key("g", i), dt);
        ss += ops::sum_squares(grads[i]);
      }
      double norm = std::sqrt(ss), ref = g.ref("norm").item(0);
      EXPECT_NEAR(norm, ref, tol.rtol * ref) << name << " " << dtype_name(dt);
      double coef = ops::clip_coefficient(norm, g.param("max_norm"));
      for (int i = 0; i < 3; ++i) {
        ops::scale_(grads[i], coef);
        expect_close(grads[i], g.ref(key("clipped", i)), tol,
                     std::string(name) + " g" + std::to_string(i));
      }
    }
  }
}

// The release's update_ema over 4 steps. F32: rtol 1e-6 / atol 1e-6 * max (one multiply-add per
// step).
TEST(OpsGolden, Ema) {
  Golden g("ema");
  const double decay = g.param("decay");
  for (DType dt : kDtypes) {
    Tol tol = tol_for(dt, {1e-6, 1e-6});
    Tensor ema = g.in("ema0", dt);
    for (int s = 1; s <= static_cast<int>(g.param("steps")); ++s) {
      ops::ema_update(ema, g.in(key("param", s), dt), decay);
      expect_close(ema, g.ref(key("ema", s)), tol, "ema step " + std::to_string(s));
    }
  }
}
