// Every rae::ops::cuda op, forward and backward, against the CPU op (rae::ops::cpu, run in F64
// on the same inputs rounded to the CUDA run's dtype) at realistic sizes: attention at the
// DiT^DH head dims 24/64/72/128 with T = 256 and a ragged T, GEMMs with bias epilogues and odd
// shapes, adaLN chunks with strided rows, and the mixed-precision paths the bf16 training step
// uses (bf16 activations with F32 weights and F32 gradients), which the public dispatch does not
// route. Gradient buffers start from random values, so accumulation (+=) is checked too.
// Tolerances (normalized max error = max|got - ref| / max|ref|): F32 2e-4 (F32 accumulation in
// a different order; attention/softmax exponentials), BF16 3e-2 (outputs are stored in bf16,
// relative rounding 2^-8 per element, plus bf16 intermediates in the GEMMs). Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/device.h"
#include "ops/activation.h"
#include "ops/attention.h"
#ifndef RAE_TEST_CUDA_OPS_ON_CPU
#include "ops/cuda/attention_cudnn.h"
#endif
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/linear.h"
#include "ops/modulate.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/precision.h"
#include "support/util.h"

namespace rae {
namespace {

namespace cpu = ops::cpu;
#ifdef RAE_TEST_CUDA_OPS_ON_CPU
// Self-check of this test's plumbing without a GPU: the "device" side runs the CPU ops (F32).
namespace gpu = ops::cpu;
Device dev() {
  return Device::cpu();
}
#define REQUIRE_GPU() (void)0
#else
namespace gpu = ops::cuda;
Device dev() {
  return Device::cuda();
}
#define REQUIRE_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: CUDA op tests skipped"
#endif

uint64_t g_seed = 1000;
Tensor rnd(const Shape& s, double std = 1.0) {
  return test::randn(s, g_seed++, std, DType::F64);
}

// The input as the CUDA run sees it (dtype dt on the GPU) and as the reference sees it (the same
// rounded values, F64 on the CPU).
struct Pair {
  Tensor dev, ref;
};
Pair pair(const Tensor& x64, DType dt) {
  Tensor r = x64.cast(dt);
  return {r.to(dev()), r.cast(DType::F64)};
}
Pair rpair(const Shape& s, DType dt, double std = 1.0) {
  return pair(rnd(s, std), dt);
}
Tensor f32cuda(const Tensor& t64) {
  return t64.cast(DType::F32).to(dev());
}
Tensor host64(const Tensor& t) {
  return t.to(Device::cpu()).cast(DType::F64);
}

double norm_err(const Tensor& got, const Tensor& ref) {
  Tensor g = host64(got),
         r = ref.is_contiguous() ? ref.cast(DType::F64) : ref.clone().cast(DType::F64);
  EXPECT_EQ(g.numel(), r.numel());
  double mx = 0, md = 0;
  for (int64_t i = 0; i < r.numel(); ++i) {
    double a = g.item(i), b = r.item(i);
    if (!std::isfinite(a)) return INFINITY;
    mx = std::max(mx, std::fabs(b));
    md = std::max(md, std::fabs(a - b));
  }
  return md / std::max(mx, 1e-12);
}

double tol(DType dt) {
  return dt == DType::BF16 ? 3e-2 : 2e-4;
}

#define EXPECT_CLOSE(got, ref, dt, what) \
  EXPECT_LT(norm_err(got, ref), tol(dt)) << (what) << " (" << dtype_name(dt) << ")"

class CudaOps : public testing::TestWithParam<DType> {};

std::string dt_name(const testing::TestParamInfo<DType>& i) {
  return dtype_name(i.param);
}

// ---- linear ----------------------------------------------------------------------------------

void check_linear(DType dt, DType param_dt, int64_t N, int64_t I, int64_t O, bool bias) {
  SCOPED_TRACE("linear N=" + std::to_string(N) + " I=" + std::to_string(I) +
               " O=" + std::to_string(O) + " params " + dtype_name(param_dt));
  Pair x = rpair({N, I}, dt), w = rpair({O, I}, dt, 0.05), b = rpair({O}, dt);
  // Parameters (and their gradients) may be F32 while activations are bf16.
  Tensor wd = param_dt == dt ? w.dev : f32cuda(w.ref), bd = param_dt == dt ? b.dev : f32cuda(b.ref);
  Tensor out = Tensor::empty({N, O}, dt, dev()), out_ref = Tensor::empty({N, O}, DType::F64);
  gpu::linear_forward(out, x.dev, wd, bias ? bd : Tensor());
  cpu::linear_forward(out_ref, x.ref, w.ref, bias ? b.ref : Tensor());
  EXPECT_CLOSE(out, out_ref, dt, "linear out");
  Pair dout = rpair({N, O}, dt), dx = rpair({N, I}, dt);
  Tensor dw0 = rnd({O, I}), db0 = rnd({O});
  Pair dw = pair(dw0, param_dt), db = pair(db0, param_dt);
  gpu::linear_backward(dx.dev, dw.dev, bias ? db.dev : Tensor(), dout.dev, x.dev, wd);
  cpu::linear_backward(dx.ref, dw.ref, bias ? db.ref : Tensor(), dout.ref, x.ref, w.ref);
  EXPECT_CLOSE(dx.dev, dx.ref, dt, "linear dx");
  EXPECT_CLOSE(dw.dev, dw.ref, dt, "linear dw");
  if (bias) {
    EXPECT_CLOSE(db.dev, db.ref, dt, "linear db");
  }
}

TEST_P(CudaOps, Linear) {
  REQUIRE_GPU();
  DType dt = GetParam();
  check_linear(dt, dt, 333, 200, 150, true);
  check_linear(dt, dt, 5, 3, 7, false);  // tiny: cuBLASLt may decline, the fallback runs
  check_linear(dt, DType::F32, 512, 1152, 3456, true);
  check_linear(dt, DType::F32, 256, 768, 1152, false);
}

TEST_P(CudaOps, LinearStridedRows) {
  REQUIRE_GPU();
  DType dt = GetParam();
  // x is a chunk of a wider tensor (row stride 2 * I), as a narrow of a fused projection is.
  int64_t N = 64, I = 96, O = 80;
  Pair wide = rpair({N, 2 * I}, dt), w = rpair({O, I}, dt, 0.1), b = rpair({O}, dt);
  Tensor xd = wide.dev.narrow(1, I, I), xr = wide.ref.narrow(1, I, I).clone();
  Tensor out = Tensor::empty({N, O}, dt, dev()), out_ref = Tensor::empty({N, O}, DType::F64);
  gpu::linear_forward(out, xd, w.dev, b.dev);
  cpu::linear_forward(out_ref, xr, w.ref, b.ref);
  EXPECT_CLOSE(out, out_ref, dt, "strided linear out");
}

TEST_P(CudaOps, Matmul) {
  REQUIRE_GPU();
  DType dt = GetParam();
  for (int t = 0; t < 4; ++t) {
    bool ta = t & 1, tb = t & 2;
    int64_t M = 37, K = 53, N = 29;
    Pair A = rpair(ta ? Shape{K, M} : Shape{M, K}, dt),
         B = rpair(tb ? Shape{N, K} : Shape{K, N}, dt);
    Pair C = rpair({M, N}, dt);
    gpu::matmul(C.dev, A.dev, B.dev, ta, tb, 0.5, 1.0);
    cpu::matmul(C.ref, A.ref, B.ref, ta, tb, 0.5, 1.0);
    EXPECT_CLOSE(C.dev, C.ref, dt, "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
  }
  Pair A = rpair({3, 16, 24}, dt), B = rpair({3, 24, 8}, dt), C = rpair({3, 16, 8}, dt);
  gpu::matmul(C.dev, A.dev, B.dev, false, false, 1.0, 0.0);
  cpu::matmul(C.ref, A.ref, B.ref, false, false, 1.0, 0.0);
  EXPECT_CLOSE(C.dev, C.ref, dt, "batched matmul");
}

TEST(CudaOpsPrecision, Tf32AndBf16Modes) {
  REQUIRE_GPU();
  for (ops::Precision p : {ops::Precision::TF32, ops::Precision::BF16}) {
    ops::PrecisionGuard guard(p);
    Pair A = rpair({128, 256}, DType::F32), B = rpair({256, 64}, DType::F32);
    Pair C = rpair({128, 64}, DType::F32);
    gpu::matmul(C.dev, A.dev, B.dev, false, false, 1.0, 0.0);
    cpu::matmul(C.ref, A.ref, B.ref, false, false, 1.0, 0.0);
    EXPECT_LT(norm_err(C.dev, C.ref), 2e-2) << ops::precision_name(p);
  }
}

// ---- attention -------------------------------------------------------------------------------

// tol_override > 0 replaces the dtype's tolerance (F32 tensors through a bf16 path).
void check_attention(DType dt, int64_t B, int64_t T, int64_t H, int64_t D,
                     double tol_override = 0) {
  SCOPED_TRACE("attention B=" + std::to_string(B) + " T=" + std::to_string(T) +
               " H=" + std::to_string(H) + " D=" + std::to_string(D));
  double scale = 1.0 / std::sqrt((double)D);
  Pair qkv = rpair({B, T, 3, H, D}, dt);
  Tensor out = Tensor::empty({B, T, H, D}, dt, dev());
  Tensor lse = Tensor::empty({B, H, T}, DType::F32, dev());
  Tensor out_ref = Tensor::empty({B, T, H, D}, DType::F64),
         lse_ref = Tensor::empty({B, H, T}, DType::F64);
  gpu::attention_forward(out, lse, qkv.dev, scale);
  cpu::attention_forward(out_ref, lse_ref, qkv.ref, scale);
  const double t = tol_override > 0 ? tol_override : tol(dt);
  EXPECT_LT(norm_err(out, out_ref), t) << "attention out (" << dtype_name(dt) << ")";
  EXPECT_LT(norm_err(lse, lse_ref), tol_override > 0 ? 1e-2 : 1e-4) << "attention lse";
  // The backward runs from the CUDA forward's own out/lse, as in training; the reference from its.
  Pair dout = rpair({B, T, H, D}, dt), dqkv = rpair({B, T, 3, H, D}, dt);
  gpu::attention_backward(dqkv.dev, dout.dev, qkv.dev, out, lse, scale);
  cpu::attention_backward(dqkv.ref, dout.ref, qkv.ref, out_ref, lse_ref, scale);
  EXPECT_LT(norm_err(dqkv.dev, dqkv.ref), t) << "attention dqkv (" << dtype_name(dt) << ")";
}

// Every CUDA implementation (the CUDA-core flash kernel, the tensor-core GEMM path and cuDNN's
// fused SDPA, which falls back to the GEMM path where it cannot run: F32, odd head dims).
struct AttentionImplGuard {
  ops::AttentionImpl saved = ops::attention_impl();
  explicit AttentionImplGuard(ops::AttentionImpl a) { ops::set_attention_impl(a); }
  ~AttentionImplGuard() { ops::set_attention_impl(saved); }
};

TEST_P(CudaOps, AttentionHeadDims) {
  REQUIRE_GPU();
  DType dt = GetParam();
  for (ops::AttentionImpl impl :
       {ops::AttentionImpl::Flash, ops::AttentionImpl::Gemm, ops::AttentionImpl::Cudnn}) {
    AttentionImplGuard guard(impl);
    SCOPED_TRACE(std::string("attention impl ") + ops::attention_impl_name(impl));
    for (int64_t D : {24, 64, 72, 128}) check_attention(dt, 2, 256, 2, D);
    check_attention(dt, 1, 77, 3, 72);  // ragged T (partial tiles)
    check_attention(dt, 2, 5, 2, 4);    // generic head dim, T below one tile
    check_attention(dt, 1, 40, 2, 40);  // generic head dim
  }
}

// The cuDNN path really runs (not its fallback) at the DiT^DH head dims 64, 72 (XL body) and
// 128 (XL head) with 256 tokens, in bf16 and for F32 tensors under the bf16 precision; fails
// with cuDNN's reason when it does not (no library, no engine), which the device check reports.
TEST(CudaOpsCudnn, FusedAttentionRuns) {
  REQUIRE_GPU();
#ifndef RAE_TEST_CUDA_OPS_ON_CPU
  if (!ops::cuda_detail::sdpa_built()) GTEST_SKIP() << "built without the cuDNN frontend";
  std::printf("cuDNN version loaded: %lld\n",
              static_cast<long long>(ops::cuda_detail::sdpa_backend_version()));
  AttentionImplGuard guard(ops::AttentionImpl::Cudnn);
  int64_t before = ops::cuda_detail::fused_attention_calls();
  for (int64_t D : {64, 72, 128}) check_attention(DType::BF16, 2, 256, 3, D);
  check_attention(DType::BF16, 1, 77, 2, 64);  // ragged T
  EXPECT_EQ(ops::cuda_detail::fused_attention_calls() - before, 8)
      << "cuDNN did not run every call: " << ops::cuda_detail::sdpa_last_error();
  {
    ops::PrecisionGuard pg(ops::Precision::BF16);  // F32 tensors, rounded to bf16 for cuDNN
    int64_t b0 = ops::cuda_detail::fused_attention_calls();
    check_attention(DType::F32, 2, 256, 2, 72, 3e-2);
    EXPECT_EQ(ops::cuda_detail::fused_attention_calls() - b0, 2)
        << "cuDNN (F32 via bf16): " << ops::cuda_detail::sdpa_last_error();
  }
#endif
}

TEST_P(CudaOps, SoftmaxAndRope) {
  REQUIRE_GPU();
  DType dt = GetParam();
  Pair x = rpair({37, 300}, dt, 3.0);
  Tensor y = Tensor::empty({37, 300}, dt, dev()), y_ref = Tensor::empty({37, 300}, DType::F64);
  gpu::softmax_forward(y, x.dev);
  cpu::softmax_forward(y_ref, x.ref);
  EXPECT_CLOSE(y, y_ref, dt, "softmax");
  Pair dy = rpair({37, 300}, dt), dx = rpair({37, 300}, dt);
  gpu::softmax_backward(dx.dev, dy.dev, y);
  cpu::softmax_backward(dx.ref, dy.ref, y_ref);
  EXPECT_CLOSE(dx.dev, dx.ref, dt, "softmax backward");

  int64_t B = 2, T = 16, H = 3, D = 72;
  Tensor cs = Tensor::empty({T, D}), sn = Tensor::empty({T, D});
  ops::rope2d_tables(cs, sn, 4, 4, D, 10000.0);
  Pair qkv = rpair({B, T, 3, H, D}, dt);
  gpu::rope_apply(qkv.dev, cs.to(dev()), sn.to(dev()));
  cpu::rope_apply(qkv.ref, cs.cast(DType::F64), sn.cast(DType::F64));
  EXPECT_CLOSE(qkv.dev, qkv.ref, dt, "rope");
  gpu::rope_apply_backward(qkv.dev, cs.to(dev()), sn.to(dev()));
  cpu::rope_apply_backward(qkv.ref, cs.cast(DType::F64), sn.cast(DType::F64));
  EXPECT_CLOSE(qkv.dev, qkv.ref, dt, "rope backward");
}

// ---- norms and modulation --------------------------------------------------------------------

TEST_P(CudaOps, LayerNormAndRmsNorm) {
  REQUIRE_GPU();
  DType dt = GetParam();
  int64_t N = 130, C = 384;
  Pair x = rpair({N, C}, dt, 2.0), w = pair(rnd({C}, 0.2).cast(DType::F64), dt), b = rpair({C}, dt);
  Tensor out = Tensor::empty({N, C}, dt, dev()), out_ref = Tensor::empty({N, C}, DType::F64);
  Tensor mean = Tensor::empty({N}, DType::F32, dev()), rstd = Tensor::empty({N}, DType::F32, dev());
  Tensor mean_ref = Tensor::empty({N}, DType::F64), rstd_ref = Tensor::empty({N}, DType::F64);
  gpu::layernorm_forward(out, mean, rstd, x.dev, w.dev, b.dev, 1e-6);
  cpu::layernorm_forward(out_ref, mean_ref, rstd_ref, x.ref, w.ref, b.ref, 1e-6);
  EXPECT_CLOSE(out, out_ref, dt, "layernorm");
  Pair dout = rpair({N, C}, dt), dx = rpair({N, C}, dt), dw = rpair({C}, DType::F32),
       db = rpair({C}, DType::F32);
  gpu::layernorm_backward(dx.dev, dw.dev, db.dev, dout.dev, x.dev, w.dev, mean, rstd);
  cpu::layernorm_backward(dx.ref, dw.ref, db.ref, dout.ref, x.ref, w.ref, mean_ref, rstd_ref);
  EXPECT_CLOSE(dx.dev, dx.ref, dt, "layernorm dx");
  EXPECT_CLOSE(dw.dev, dw.ref, dt, "layernorm dw");
  EXPECT_CLOSE(db.dev, db.ref, dt, "layernorm db");

  gpu::rmsnorm_forward(out, rstd, x.dev, w.dev, 1e-6);
  cpu::rmsnorm_forward(out_ref, rstd_ref, x.ref, w.ref, 1e-6);
  EXPECT_CLOSE(out, out_ref, dt, "rmsnorm");
  EXPECT_LT(norm_err(rstd, rstd_ref), 1e-4) << "rmsnorm rstd";
  gpu::rmsnorm_backward(dx.dev, dw.dev, dout.dev, x.dev, w.dev, rstd);
  cpu::rmsnorm_backward(dx.ref, dw.ref, dout.ref, x.ref, w.ref, rstd_ref);
  EXPECT_CLOSE(dx.dev, dx.ref, dt, "rmsnorm dx");
  EXPECT_CLOSE(dw.dev, dw.ref, dt, "rmsnorm dw");
}

// adaLN output (B, 6C) or per token (B, T, 6C); shift/scale/gate are strided chunks of it.
void check_rms_modulate(DType dt, bool per_token, int64_t B = 3, int64_t T = 50, int64_t C = 256) {
  SCOPED_TRACE(std::string(per_token ? "per token" : "per sample") + " B=" + std::to_string(B) +
               " T=" + std::to_string(T) + " C=" + std::to_string(C));
  Shape ada_shape = per_token ? Shape{B, T, 6 * C} : Shape{B, 6 * C};
  int cdim = per_token ? 2 : 1;
  Pair ada = rpair(ada_shape, dt, 0.5), x = rpair({B, T, C}, dt, 2.0);
  Pair w = pair(rnd({C}, 0.2), DType::F32);  // norm weight: an F32 parameter
  Tensor shift = ada.dev.narrow(cdim, 0, C), scale = ada.dev.narrow(cdim, C, C);
  Tensor shift_r = ada.ref.narrow(cdim, 0, C).clone(), scale_r = ada.ref.narrow(cdim, C, C).clone();
  Tensor out = Tensor::empty({B, T, C}, dt, dev()), out_ref = Tensor::empty({B, T, C}, DType::F64);
  Tensor rstd = Tensor::empty({B * T}, DType::F32, dev()),
         rstd_ref = Tensor::empty({B * T}, DType::F64);
  gpu::rmsnorm_modulate_forward(out, rstd, x.dev, w.dev, shift, scale, 1e-6);
  cpu::rmsnorm_modulate_forward(out_ref, rstd_ref, x.ref, w.ref, shift_r, scale_r, 1e-6);
  EXPECT_CLOSE(out, out_ref, dt, "rmsnorm_modulate");
  Pair dout = rpair({B, T, C}, dt), dx = rpair({B, T, C}, dt), dw = rpair({C}, DType::F32);
  Pair dada = rpair(ada_shape, dt);
  Tensor dshift = dada.dev.narrow(cdim, 0, C), dscale = dada.dev.narrow(cdim, C, C);
  Tensor dshift_r = dada.ref.narrow(cdim, 0, C).clone(),
         dscale_r = dada.ref.narrow(cdim, C, C).clone();
  gpu::rmsnorm_modulate_backward(dx.dev, dw.dev, dshift, dscale, dout.dev, x.dev, w.dev, scale,
                                 rstd);
  cpu::rmsnorm_modulate_backward(dx.ref, dw.ref, dshift_r, dscale_r, dout.ref, x.ref, w.ref,
                                 scale_r, rstd_ref);
  EXPECT_CLOSE(dx.dev, dx.ref, dt, "rmsnorm_modulate dx");
  EXPECT_CLOSE(dw.dev, dw.ref, dt, "rmsnorm_modulate dw");
  EXPECT_CLOSE(dshift.clone(), dshift_r, dt, "rmsnorm_modulate dshift");
  EXPECT_CLOSE(dscale.clone(), dscale_r, dt, "rmsnorm_modulate dscale");
  // The untouched chunks of the adaLN gradient stay as they were.
  EXPECT_CLOSE(dada.dev.narrow(cdim, 2 * C, 4 * C).clone(),
               dada.ref.narrow(cdim, 2 * C, 4 * C).clone(), dt, "untouched chunks");

  // modulate and gate on the same chunks.
  Tensor gate = ada.dev.narrow(cdim, 2 * C, C), gate_r = ada.ref.narrow(cdim, 2 * C, C).clone();
  gpu::modulate_forward(out, x.dev, shift, scale);
  cpu::modulate_forward(out_ref, x.ref, shift_r, scale_r);
  EXPECT_CLOSE(out, out_ref, dt, "modulate");
  gpu::modulate_backward(dx.dev, dshift, dscale, dout.dev, x.dev, scale);
  cpu::modulate_backward(dx.ref, dshift_r, dscale_r, dout.ref, x.ref, scale_r);
  EXPECT_CLOSE(dx.dev, dx.ref, dt, "modulate dx");
  EXPECT_CLOSE(dshift.clone(), dshift_r, dt, "modulate dshift");
  EXPECT_CLOSE(dscale.clone(), dscale_r, dt, "modulate dscale");
  Pair y = rpair({B, T, C}, dt);
  gpu::gate_residual_forward(x.dev, y.dev, gate);
  cpu::gate_residual_forward(x.ref, y.ref, gate_r);
  EXPECT_CLOSE(x.dev, x.ref, dt, "gate_residual");
  Tensor dgate = dada.dev.narrow(cdim, 2 * C, C), dgate_r = dada.ref.narrow(cdim, 2 * C, C).clone();
  Pair dy = rpair({B, T, C}, dt);
  gpu::gate_residual_backward(dy.dev, dgate, dout.dev, y.dev, gate);
  cpu::gate_residual_backward(dy.ref, dgate_r, dout.ref, y.ref, gate_r);
  EXPECT_CLOSE(dy.dev, dy.ref, dt, "gate dy");
  EXPECT_CLOSE(dgate.clone(), dgate_r, dt, "gate dgate");
}

TEST_P(CudaOps, RmsNormModulateAndGates) {
  REQUIRE_GPU();
  check_rms_modulate(GetParam(), false);
  check_rms_modulate(GetParam(), true);
}

// Sets an environment variable for a scope (restoring it after).
struct EnvGuard {
  std::string name, saved;
  bool had;
  EnvGuard(const char* n, const char* value) : name(n) {
    const char* s = std::getenv(n);
    had = s != nullptr;
    if (had) saved = s;
    setenv(n, value, 1);
  }
  ~EnvGuard() {
    if (had)
      setenv(name.c_str(), saved.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

// The vectorised kernels (norms, gates, SwiGLU, axpy) and the fused bias gradient against the
// scalar ones' reference at DiT^DH-XL widths (C = 1152, SwiGLU hidden 3072, per-sample groups of
// 256 tokens), with RAE_CUDA_LEGACY unset (fast paths) and "all" (the scalar kernels), so one
// device run shows which work.
TEST_P(CudaOps, FastAndLegacyKernelsAtDiTWidths) {
  REQUIRE_GPU();
  DType dt = GetParam();
  for (const char* legacy : {"", "all"}) {
    EnvGuard env("RAE_CUDA_LEGACY", legacy);
    SCOPED_TRACE(std::string("RAE_CUDA_LEGACY=") + legacy);
    check_rms_modulate(dt, false, 2, 256, 1152);
    check_rms_modulate(dt, true, 1, 40, 1152);
    check_linear(dt, DType::F32, 512, 1152, 1152, true);
    check_linear(dt, dt, 300, 64, 96, true);
    Pair x12 = rpair({96, 2 * 3072}, dt, 2.0), dout = rpair({96, 3072}, dt),
         dx12 = rpair({96, 2 * 3072}, dt);
    Tensor y = Tensor::empty({96, 3072}, dt, dev()), y_ref = Tensor::empty({96, 3072}, DType::F64);
    gpu::swiglu_forward(y, x12.dev);
    cpu::swiglu_forward(y_ref, x12.ref);
    EXPECT_CLOSE(y, y_ref, dt, "swiglu (wide)");
    gpu::swiglu_backward(dx12.dev, dout.dev, x12.dev);
    cpu::swiglu_backward(dx12.ref, dout.ref, x12.ref);
    EXPECT_CLOSE(dx12.dev, dx12.ref, dt, "swiglu backward (wide)");
    Pair a = rpair({64, 1152}, dt), b = rpair({64, 1152}, dt);
    gpu::add_(a.dev, b.dev, 0.5);
    cpu::add_(a.ref, b.ref, 0.5);
    EXPECT_CLOSE(a.dev, a.ref, dt, "add_ (wide)");
    Pair ln_x = rpair({70, 768}, dt, 2.0), ln_w = rpair({768}, DType::F32),
         ln_b = rpair({768}, DType::F32);
    Tensor o = Tensor::empty({70, 768}, dt, dev()), o_ref = Tensor::empty({70, 768}, DType::F64);
    Tensor mu = Tensor::empty({70}, DType::F32, dev()), rs = Tensor::empty({70}, DType::F32, dev());
    Tensor mu_ref = Tensor::empty({70}, DType::F64), rs_ref = Tensor::empty({70}, DType::F64);
    gpu::layernorm_forward(o, mu, rs, ln_x.dev, ln_w.dev, ln_b.dev, 1e-6);
    cpu::layernorm_forward(o_ref, mu_ref, rs_ref, ln_x.ref, ln_w.ref, ln_b.ref, 1e-6);
    EXPECT_CLOSE(o, o_ref, dt, "layernorm (encoder width)");
    EXPECT_LT(norm_err(rs, rs_ref), 1e-4) << "layernorm rstd";
  }
}

// ---- activations -----------------------------------------------------------------------------

TEST_P(CudaOps, Activations) {
  REQUIRE_GPU();
  DType dt = GetParam();
  Shape s{70, 130};
  for (int k = 0; k < 3; ++k) {
    Pair x = rpair(s, dt, 2.0), dout = rpair(s, dt), dx = rpair(s, dt);
    Tensor y = Tensor::empty(s, dt, dev()), y_ref = Tensor::empty(s, DType::F64);
    const char* name = k == 0 ? "gelu exact" : k == 1 ? "gelu tanh" : "silu";
    if (k < 2) {
      ops::GeluKind kind = k == 0 ? ops::GeluKind::Exact : ops::GeluKind::Tanh;
      gpu::gelu_forward(y, x.dev, kind);
      cpu::gelu_forward(y_ref, x.ref, kind);
      gpu::gelu_backward(dx.dev, dout.dev, x.dev, kind);
      cpu::gelu_backward(dx.ref, dout.ref, x.ref, kind);
    } else {
      gpu::silu_forward(y, x.dev);
      cpu::silu_forward(y_ref, x.ref);
      gpu::silu_backward(dx.dev, dout.dev, x.dev);
      cpu::silu_backward(dx.ref, dout.ref, x.ref);
    }
    EXPECT_CLOSE(y, y_ref, dt, name);
    EXPECT_CLOSE(dx.dev, dx.ref, dt, std::string(name) + " backward");
  }
  Pair x12 = rpair({70, 2 * 130}, dt, 2.0), dout = rpair(s, dt), dx12 = rpair({70, 260}, dt);
  Tensor y = Tensor::empty(s, dt, dev()), y_ref = Tensor::empty(s, DType::F64);
  gpu::swiglu_forward(y, x12.dev);
  cpu::swiglu_forward(y_ref, x12.ref);
  EXPECT_CLOSE(y, y_ref, dt, "swiglu");
  gpu::swiglu_backward(dx12.dev, dout.dev, x12.dev);
  cpu::swiglu_backward(dx12.ref, dout.ref, x12.ref);
  EXPECT_CLOSE(dx12.dev, dx12.ref, dt, "swiglu backward");
}

// ---- elementwise -----------------------------------------------------------------------------

TEST_P(CudaOps, Elementwise) {
  REQUIRE_GPU();
  DType dt = GetParam();
  Shape s{33, 100};
  Pair a = rpair(s, dt), b = rpair(s, dt), row = rpair({100}, dt);
  gpu::add_(a.dev, b.dev, -0.75);
  cpu::add_(a.ref, b.ref, -0.75);
  EXPECT_CLOSE(a.dev, a.ref, dt, "add_");
  gpu::scale_(a.dev, 1.5);
  cpu::scale_(a.ref, 1.5);
  EXPECT_CLOSE(a.dev, a.ref, dt, "scale_");
  Tensor o = Tensor::empty(s, dt, dev()), o_ref = Tensor::empty(s, DType::F64);
  gpu::add(o, a.dev, b.dev);
  cpu::add(o_ref, a.ref, b.ref);
  EXPECT_CLOSE(o, o_ref, dt, "add");
  gpu::add_rowwise(o, a.dev, row.dev);
  cpu::add_rowwise(o_ref, a.ref, row.ref);
  EXPECT_CLOSE(o, o_ref, dt, "add_rowwise");
  Pair drow = rpair({100}, DType::F32);
  gpu::add_rowwise_backward(drow.dev, b.dev);
  cpu::add_rowwise_backward(drow.ref, b.ref);
  EXPECT_CLOSE(drow.dev, drow.ref, dt, "add_rowwise_backward");
  // A (R, C) table: row i % R is added to row i (position embeddings over B * T rows).
  Pair table = rpair({3, 100}, dt), dtable = rpair({3, 100}, DType::F32);
  gpu::add_rowwise(o, a.dev, table.dev);
  cpu::add_rowwise(o_ref, a.ref, table.ref);
  EXPECT_CLOSE(o, o_ref, dt, "add_rowwise table");
  gpu::add_rowwise_backward(dtable.dev, b.dev);
  cpu::add_rowwise_backward(dtable.ref, b.ref);
  EXPECT_CLOSE(dtable.dev, dtable.ref, dt, "add_rowwise_backward table");

  // a.dev was rounded to dt after each in-place op above; reduce the reference over the values
  // the device actually holds, so only the reduction itself is compared.
  Tensor a_held = a.dev.to(Device::cpu()).cast(DType::F64);
  double ss = gpu::sum_squares(a.dev), ss_ref = cpu::sum_squares(a_held);
  EXPECT_NEAR(ss, ss_ref, 1e-6 * ss_ref) << "sum_squares";
  EXPECT_TRUE(gpu::all_finite(a.dev));
  Tensor bad = a.ref.clone();
  static_cast<double*>(bad.raw())[1234] = INFINITY;
  EXPECT_FALSE(gpu::all_finite(bad.cast(dt).to(dev())));
  static_cast<double*>(bad.raw())[1234] = NAN;
  EXPECT_FALSE(gpu::all_finite(bad.cast(dt).to(dev())));

  double mse = gpu::mse_forward(a.dev, b.dev), mse_ref = cpu::mse_forward(a_held, b.ref);
  EXPECT_NEAR(mse, mse_ref, 1e-6 * mse_ref) << "mse";
  Pair dp = rpair(s, dt);
  gpu::mse_backward(dp.dev, a.dev, b.dev, 0.5);
  cpu::mse_backward(dp.ref, a.ref, b.ref, 0.5);
  EXPECT_CLOSE(dp.dev, dp.ref, dt, "mse backward");

  int64_t B = 4;
  Pair x = rpair({B, 3, 50}, dt), eps = rpair({B, 3, 50}, dt);
  Tensor t64 = test::rand_uniform({B}, 77, 0.0, 1.0, DType::F64).cast(DType::F32).cast(DType::F64);
  Tensor xt = Tensor::empty({B, 3, 50}, dt, dev()), tg = Tensor::empty({B, 3, 50}, dt, dev());
  Tensor xt_ref = Tensor::empty({B, 3, 50}, DType::F64),
         tg_ref = Tensor::empty({B, 3, 50}, DType::F64);
  gpu::flow_interpolate(xt, tg, x.dev, eps.dev, f32cuda(t64));
  cpu::flow_interpolate(xt_ref, tg_ref, x.ref, eps.ref, t64);
  EXPECT_CLOSE(xt, xt_ref, dt, "flow xt");
  EXPECT_CLOSE(tg, tg_ref, dt, "flow target");
}

// ---- embeddings ------------------------------------------------------------------------------

TEST_P(CudaOps, Embeddings) {
  REQUIRE_GPU();
  DType dt = GetParam();
  int64_t B = 6, F = 128, K = 11, C = 96;
  Tensor t64 = test::rand_uniform({B}, 5, 0.0, 1.0, DType::F64).cast(DType::F32).cast(DType::F64);
  Tensor W64 = rnd({F}, 10.0).cast(DType::F32).cast(DType::F64);
  Tensor ff = Tensor::empty({B, 2 * F}, DType::F32, dev()),
         ff_ref = Tensor::empty({B, 2 * F}, DType::F64);
  gpu::fourier_features(ff, f32cuda(t64), f32cuda(W64));
  cpu::fourier_features(ff_ref, t64, W64);
  // Angles reach ~200 rad: an F32 angle loses ~1e-5 (the CUDA kernel forms it in double).
  EXPECT_LT(norm_err(ff, ff_ref), 5e-5) << "fourier_features";

  Tensor labels = Tensor::empty({B}, DType::I32);
  int32_t lv[] = {3, 10, 3, 0, 7, 3};
  for (int i = 0; i < B; ++i) static_cast<int32_t*>(labels.raw())[i] = lv[i];
  Pair table = rpair({K, C}, dt);
  Tensor e = Tensor::empty({B, C}, dt, dev()), e_ref = Tensor::empty({B, C}, DType::F64);
  gpu::embedding_forward(e, table.dev, labels.to(dev()));
  cpu::embedding_forward(e_ref, table.ref, labels);
  EXPECT_CLOSE(e, e_ref, dt, "embedding");
  Pair dtable = rpair({K, C}, DType::F32), dout = rpair({B, C}, dt);
  gpu::embedding_backward(dtable.dev, dout.dev, labels.to(dev()));
  cpu::embedding_backward(dtable.ref, dout.ref, labels);
  EXPECT_CLOSE(dtable.dev, dtable.ref, dt, "embedding backward (repeated labels)");

  Pair img = rpair({2, 3, 8, 12}, dt);
  Tensor tok = Tensor::empty({2, 6, 48}, dt, dev()),
         tok_ref = Tensor::empty({2, 6, 48}, DType::F64);
  gpu::patchify(tok, img.dev, 4);
  cpu::patchify(tok_ref, img.ref, 4);
  EXPECT_CLOSE(tok, tok_ref, dt, "patchify");
  Tensor im = Tensor::empty({2, 3, 8, 12}, dt, dev()),
         im_ref = Tensor::empty({2, 3, 8, 12}, DType::F64);
  gpu::unpatchify(im, tok, 4);
  cpu::unpatchify(im_ref, tok_ref, 4);
  EXPECT_CLOSE(im, im_ref, dt, "unpatchify");
}

// ---- optimizer (F32 state) --------------------------------------------------------------------

TEST(CudaOpsOptim, AdamWAndEma) {
  REQUIRE_GPU();
  Shape s{1000, 37};
  Pair p = rpair(s, DType::F32), g = rpair(s, DType::F32), m = rpair(s, DType::F32, 0.1);
  Pair v = pair(test::rand_uniform(s, 9, 0.0, 0.5, DType::F64), DType::F32);
  ops::AdamWParams hp;
  hp.lr = 1e-3;
  hp.weight_decay = 0.1;
  hp.step = 7;
  hp.grad_scale = 0.5;
  gpu::adamw_step(p.dev, g.dev, m.dev, v.dev, hp);
  cpu::adamw_step(p.ref, g.ref, m.ref, v.ref, hp);
  EXPECT_LT(norm_err(p.dev, p.ref), 1e-6) << "adamw param";
  EXPECT_LT(norm_err(m.dev, m.ref), 1e-6) << "adamw m";
  EXPECT_LT(norm_err(v.dev, v.ref), 1e-6) << "adamw v";
  Pair ema = rpair(s, DType::F32);
  gpu::ema_update(ema.dev, p.dev, 0.9995);
  cpu::ema_update(ema.ref, p.ref, 0.9995);
  EXPECT_LT(norm_err(ema.dev, ema.ref), 1e-6) << "ema";
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, testing::Values(DType::F32, DType::BF16), dt_name);

}  // namespace
}  // namespace rae
