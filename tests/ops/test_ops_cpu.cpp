// CPU op semantics the case table does not cover: the host-built tables (RoPE, sin-cos
// positions) against the release's definitions, multi-step AdamW, reductions over many chunks,
// larger shapes, and argument errors that name the op and the argument.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "support/util.h"

using namespace rae;
namespace op = rae::ops;

namespace {

// Runs fn and returns the message of the rae::Error it throws ("" if none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Rope2dTables, MatchTheReleaseFormula) {
  // VisionRotaryEmbeddingFast(dim = hd / 2, pt_seq_len = grid): freq_k = theta^(-2k / dim),
  // each repeated for an adjacent pair; columns [0, dim) rotate by the row index i, columns
  // [dim, hd) by the column index j, token i * grid_w + j. F32 tables: 1e-6 absolute.
  const int64_t gh = 3, gw = 4, hd = 16, dim = hd / 2;
  Tensor c = Tensor::empty({gh * gw, hd}), s = Tensor::empty({gh * gw, hd});
  op::rope2d_tables(c, s, gh, gw, hd, 10000.0);
  for (int64_t i = 0; i < gh; ++i)
    for (int64_t j = 0; j < gw; ++j)
      for (int64_t col = 0; col < hd; ++col) {
        const int64_t k = (col % dim) / 2;
        const double freq = std::pow(10000.0, -2.0 * k / dim);
        const double angle = (col < dim ? i : j) * freq;
        const int64_t e = (i * gw + j) * hd + col;
        EXPECT_NEAR(c.item(e), std::cos(angle), 1e-6) << i << "," << j << "," << col;
        EXPECT_NEAR(s.item(e), std::sin(angle), 1e-6) << i << "," << j << "," << col;
      }
}

TEST(Rope2dTables, MatchPyTorchValuesForTheDiTGrid) {
  // Values printed by PyTorch 2.x for VisionRotaryEmbeddingFast(dim=32, pt_seq_len=16) (head dim
  // 64, DiT^DH-S/XL encoder grid 16x16), rows/cols chosen across both halves. 1 ulp of float32.
  Tensor c = Tensor::empty({256, 64}), s = Tensor::empty({256, 64});
  op::rope2d_tables(c, s, 16, 16, 64, 10000.0);
  struct V {
    int64_t row, col;
    double cos, sin;
  };
  for (V v : {V{53, 2, -0.11596616357564926, 0.9932531714439392},
              V{53, 40, 0.8775825500488281, 0.4794255495071411},
              V{255, 63, 0.9999964237213135, 0.002667415887117386},
              V{17, 33, 0.5403023362159729, 0.8414709568023682}}) {
    EXPECT_NEAR(c.item(v.row * 64 + v.col), v.cos, 1.2e-7) << v.row << "," << v.col;
    EXPECT_NEAR(s.item(v.row * 64 + v.col), v.sin, 1.2e-7) << v.row << "," << v.col;
  }
}

TEST(SincosPosEmbed2d, MatchesTheReleaseLayout) {
  // get_2d_sincos_pos_embed: grid = meshgrid(w, h), so the first half encodes the column j and
  // the second the row i; each half is [sin(pos * omega) | cos(pos * omega)],
  // omega_k = 10000^(-k / (C / 4)). Computed in double like numpy: 1e-12.
  const int64_t gh = 3, gw = 5, C = 16, q = C / 4;
  Tensor p = Tensor::empty({gh * gw, C}, DType::F64);
  op::sincos_pos_embed_2d(p, gh, gw);
  for (int64_t i = 0; i < gh; ++i)
    for (int64_t j = 0; j < gw; ++j)
      for (int64_t k = 0; k < q; ++k) {
        const double om = 1.0 / std::pow(10000.0, static_cast<double>(k) / q);
        const int64_t r = (i * gw + j) * C;
        EXPECT_NEAR(p.item(r + k), std::sin(j * om), 1e-12);
        EXPECT_NEAR(p.item(r + q + k), std::cos(j * om), 1e-12);
        EXPECT_NEAR(p.item(r + 2 * q + k), std::sin(i * om), 1e-12);
        EXPECT_NEAR(p.item(r + 3 * q + k), std::cos(i * om), 1e-12);
      }
  Tensor f = Tensor::empty({gh * gw, C});  // F32 too
  op::sincos_pos_embed_2d(f, gh, gw);
  EXPECT_LT(test::max_abs_diff(f, p), 1e-7);
}

TEST(AdamW, FiveStepsMatchPyTorchFormulaInDouble) {
  // torch.optim.AdamW (decoupled decay, bias correction), steps 1..5, with grad_scale.
  Tensor p = test::randn({37}, 1, 1.0, DType::F64), g0 = test::randn({37}, 2, 1.0, DType::F64);
  Tensor m = Tensor::zeros({37}, DType::F64), v = Tensor::zeros({37}, DType::F64);
  std::vector<double> rp(37), rm(37, 0.0), rv(37, 0.0);
  for (int i = 0; i < 37; ++i) rp[i] = p.item(i);
  op::AdamWParams ap;
  ap.lr = 3e-3;
  ap.beta1 = 0.9;
  ap.beta2 = 0.95;
  ap.weight_decay = 0.05;
  ap.grad_scale = 0.25;
  for (int step = 1; step <= 5; ++step) {
    ap.step = step;
    Tensor g = g0.clone();
    op::scale_(g, 1.0 + 0.1 * step);
    op::adamw_step(p, g, m, v, ap);
    for (int i = 0; i < 37; ++i) {
      const double gi = g.item(i) * ap.grad_scale;
      rp[i] *= 1 - ap.lr * ap.weight_decay;
      rm[i] = ap.beta1 * rm[i] + (1 - ap.beta1) * gi;
      rv[i] = ap.beta2 * rv[i] + (1 - ap.beta2) * gi * gi;
      const double mh = rm[i] / (1 - std::pow(ap.beta1, step));
      const double vh = rv[i] / (1 - std::pow(ap.beta2, step));
      rp[i] -= ap.lr * mh / (std::sqrt(vh) + ap.eps);
    }
  }
  for (int i = 0; i < 37; ++i) {
    EXPECT_NEAR(p.item(i), rp[i], 1e-14);
    EXPECT_NEAR(m.item(i), rm[i], 1e-14);
    EXPECT_NEAR(v.item(i), rv[i], 1e-14);
  }
}

TEST(Optim, ClipCoefficientAndEma) {
  EXPECT_DOUBLE_EQ(op::clip_coefficient(0.5, 1.0), 1.0);
  EXPECT_NEAR(op::clip_coefficient(4.0, 1.0), 1.0 / (4.0 + 1e-6), 1e-15);
  EXPECT_EQ(op::clip_coefficient(INFINITY, 1.0), 0.0);
  Tensor e = Tensor::full({5}, 1.0), p = Tensor::full({5}, 3.0);
  op::ema_update(e, p, 0.75);
  EXPECT_FLOAT_EQ(e.item(4), 1.5f);
}

TEST(Reductions, ManyChunksInDoubleAndDeterministic) {
  // 100k F32 elements (13 chunks): the sum of squares accumulates in double.
  Tensor x = Tensor::full({100000}, 1e-3);
  EXPECT_NEAR(op::sum_squares(x), 100000 * static_cast<double>(1e-3f) * 1e-3f, 1e-12);
  Tensor y = test::randn({100000}, 5);
  EXPECT_NEAR(op::mse_forward(x, y), op::mse_forward(x, y), 0.0);
  EXPECT_TRUE(op::all_finite(y));
  y.data<float>()[77777] = NAN;
  EXPECT_FALSE(op::all_finite(y));
  y.data<float>()[77777] = -INFINITY;
  EXPECT_FALSE(op::all_finite(y));
}

TEST(Reductions, WeightAndBiasGradientsOverManyRowChunks) {
  // 3000 rows of 16: the column reductions (rmsnorm dw, linear db, add_rowwise) span several
  // fixed chunks; compare with plain double sums.
  const int64_t N = 3000, C = 16;
  Tensor x = test::randn({N, C}, 11, 1.0, DType::F64),
         dout = test::randn({N, C}, 12, 1.0, DType::F64);
  Tensor out = Tensor::empty({N, C}, DType::F64), rstd = Tensor::empty({N}, DType::F64);
  Tensor w = Tensor::full({C}, 1.0, DType::F64), dw = Tensor::zeros({C}, DType::F64);
  op::rmsnorm_forward(out, rstd, x, w, 1e-6);
  op::rmsnorm_backward(Tensor(), dw, dout, x, w, rstd);
  Tensor drow = Tensor::zeros({C}, DType::F64);
  op::add_rowwise_backward(drow, dout);
  for (int64_t j = 0; j < C; ++j) {
    double sw = 0, sr = 0;
    for (int64_t i = 0; i < N; ++i) {
      sw += dout.item(i * C + j) * out.item(i * C + j);
      sr += dout.item(i * C + j);
    }
    EXPECT_NEAR(dw.item(j), sw, 1e-9);
    EXPECT_NEAR(drow.item(j), sr, 1e-9);
  }
}

TEST(Attention, LongerSequenceMatchesNaiveInF32) {
  // T = 67 (not a multiple of anything), D = 24, one head pair: F32 kernel vs double naive.
  const int64_t B = 1, T = 67, H = 2, D = 24;
  Tensor qkv = test::randn({B, T, 3, H, D}, 21);
  Tensor out = Tensor::empty({B, T, H, D}), lse = Tensor::empty({B, H, T});
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  op::attention_forward(out, lse, qkv, scale);
  auto at = [&](int64_t t, int64_t part, int64_t h, int64_t d) {
    return qkv.item(((t * 3 + part) * H + h) * D + d);
  };
  double worst = 0;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> s(T);
      double m = -INFINITY, z = 0;
      for (int64_t j = 0; j < T; ++j) {
        for (int64_t d = 0; d < D; ++d) s[j] += at(i, 0, h, d) * at(j, 1, h, d) * scale;
        m = std::max(m, s[j]);
      }
      for (int64_t j = 0; j < T; ++j) z += std::exp(s[j] - m);
      EXPECT_NEAR(lse.item(h * T + i), m + std::log(z), 1e-5);
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j < T; ++j) o += std::exp(s[j] - m) / z * at(j, 2, h, d);
        worst = std::max(worst, std::fabs(out.item((i * H + h) * D + d) - o));
      }
    }
  EXPECT_LT(worst, 1e-5);
}

TEST(OpErrors, MessagesNameTheOpAndTheArgument) {
  Tensor x = Tensor::zeros({4, 8}), w = Tensor::zeros({6, 7}), out = Tensor::zeros({4, 6});
  std::string e = error_of([&] { op::linear_forward(out, x, w, Tensor()); });
  EXPECT_NE(e.find("linear_forward"), std::string::npos) << e;
  EXPECT_NE(e.find("'x'"), std::string::npos) << e;

  Tensor w64 = Tensor::zeros({6, 8}, DType::F64);
  e = error_of([&] { op::linear_forward(out, x, w64, Tensor()); });
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("f64"), std::string::npos) << e;

  Tensor rstd = Tensor::zeros({3});
  e = error_of([&] { op::rmsnorm_forward(Tensor::zeros({4, 8}), rstd, x, Tensor(), 1e-6); });
  EXPECT_NE(e.find("rmsnorm_forward"), std::string::npos) << e;
  EXPECT_NE(e.find("'rstd'"), std::string::npos) << e;

  // A slice of the middle dim is not uniformly row-strided: refused, not silently misread.
  Tensor x3 = Tensor::zeros({2, 5, 8});
  Tensor part = x3.narrow(1, 1, 3);
  e = error_of([&] { op::silu_forward(Tensor::zeros({2, 3, 8}), part); });
  EXPECT_NE(e.find("silu_forward"), std::string::npos) << e;
  EXPECT_NE(e.find("clone()"), std::string::npos) << e;

  Tensor table = Tensor::zeros({3, 8}), labels = Tensor::zeros({2}, DType::I32);
  labels.data<int32_t>()[1] = 3;
  e = error_of([&] { op::embedding_forward(Tensor::zeros({2, 8}), table, labels); });
  EXPECT_NE(e.find("label 3"), std::string::npos) << e;

  e = error_of([&] {
    op::gelu_forward(Tensor::zeros({4, 8}, DType::BF16), x.cast(DType::BF16), op::GeluKind::Exact);
  });
  EXPECT_NE(e.find("f32 and f64"), std::string::npos) << e;
}

TEST(OpLayout, ChunkedOutputsAndTransposedGemmWithLeadingDims) {
  // matmul on 2-D views with row strides (chunks of wider matrices) matches contiguous copies.
  Tensor A = test::randn({5, 12}, 31), Bm = test::randn({4, 10}, 32);
  Tensor a = A.narrow(1, 2, 4), b = Bm.narrow(1, 3, 6);  // (5, 4) and (4, 6)
  Tensor wide = Tensor::zeros({5, 9});
  Tensor c = wide.narrow(1, 1, 6);
  op::matmul(c, a, b, false, false);
  Tensor ref = Tensor::empty({5, 6});
  op::matmul(ref, a.clone(), b.clone(), false, false);
  EXPECT_LT(test::max_abs_diff(c.clone(), ref), 1e-6);
  EXPECT_EQ(wide.item(0), 0.0);  // columns outside the view untouched
  EXPECT_EQ(wide.item(8), 0.0);
}

}  // namespace
