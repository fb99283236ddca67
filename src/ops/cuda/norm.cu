// CUDA LayerNorm, RMSNorm and RMSNorm fused with adaLN modulation. Row statistics: one warp per
// row, F32 accumulation. Parameter gradients: deterministic grouped column reductions. The
// vectorised kernels of norm_fast.cu run first where the tensors allow them (fast_paths.cuh);
// the scalar kernels here are the general case and the RAE_CUDA_LEGACY=norm fallback.
#include "ops/cuda/common.cuh"
#include "ops/cuda/fast_paths.cuh"
#include "ops/norm.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row, 256 threads

// ---- LayerNorm ---------------------------------------------------------------------------

__global__ void layernorm_fwd_kernel(Ptr out, float* mean, float* rstd, Ptr x, Ptr w, Ptr b,
                                     int64_t N, int64_t C, float eps) {
  int64_t n = blockIdx.x * (int64_t)kRowsPerBlock + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (n >= N) return;
  float s = 0.f;
  for (int64_t c = lane; c < C; c += 32) s += x.ld2(n, c, C);
  float mu = warp_sum(s) / C;
  float v = 0.f;
  for (int64_t c = lane; c < C; c += 32) {
    float d = x.ld2(n, c, C) - mu;
    v += d * d;
  }
  float rs = rsqrtf(warp_sum(v) / C + eps);
  for (int64_t c = lane; c < C; c += 32) {
    float y = (x.ld2(n, c, C) - mu) * rs;
    if (w.valid()) y *= w.ld(c);
    if (b.valid()) y += b.ld(c);
    out.st2(n, c, C, y);
  }
  if (lane == 0) {
    mean[n] = mu;
    rstd[n] = rs;
  }
}

__global__ void layernorm_bwd_dx_kernel(Ptr dx, Ptr dout, Ptr x, Ptr w, const float* mean,
                                        const float* rstd, int64_t N, int64_t C) {
  int64_t n = blockIdx.x * (int64_t)kRowsPerBlock + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (n >= N) return;
  float mu = mean[n], rs = rstd[n];
  float sg = 0.f, sgx = 0.f;
  for (int64_t c = lane; c < C; c += 32) {
    float g = dout.ld2(n, c, C) * (w.valid() ? w.ld(c) : 1.f);
    float xh = (x.ld2(n, c, C) - mu) * rs;
    sg += g;
    sgx += g * xh;
  }
  sg = warp_sum(sg) / C;
  sgx = warp_sum(sgx) / C;
  for (int64_t c = lane; c < C; c += 32) {
    float g = dout.ld2(n, c, C) * (w.valid() ? w.ld(c) : 1.f);
    float xh = (x.ld2(n, c, C) - mu) * rs;
    dx.add2(n, c, C, rs * (g - sg - xh * sgx));
  }
}

struct LayerNormParamGrad {  // acc[0] = dout * xhat (dw), acc[1] = dout (db)
  Ptr dout, x;
  const float *mean, *rstd;
  int64_t C;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    float g = dout.ld2(n, c, C);
    acc[0] += g * (x.ld2(n, c, C) - mean[n]) * rstd[n];
    acc[1] += g;
  }
};

// ---- RMSNorm (+ modulation) ----------------------------------------------------------------

// out = x * rstd * w * (1 + scale[p]) + shift[p]; scale/shift may be null (plain RMSNorm).
__global__ void rmsnorm_fwd_kernel(Ptr out, float* rstd, Ptr x, Ptr w, Ptr shift, Ptr scale,
                                   int64_t rows_per_param, int64_t N, int64_t C, float eps) {
  int64_t n = blockIdx.x * (int64_t)kRowsPerBlock + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (n >= N) return;
  const int64_t prow = n / rows_per_param;
  float ss = 0.f;
  for (int64_t c = lane; c < C; c += 32) {
    float v = x.ld2(n, c, C);
    ss += v * v;
  }
  float rs = rsqrtf(warp_sum(ss) / C + eps);
  for (int64_t c = lane; c < C; c += 32) {
    float y = x.ld2(n, c, C) * rs;
    if (w.valid()) y *= w.ld(c);
    if (scale.valid()) y *= 1.f + scale.ld2(prow, c, C);
    if (shift.valid()) y += shift.ld2(prow, c, C);
    out.st2(n, c, C, y);
  }
  if (lane == 0 && rstd) rstd[n] = rs;
}

// dx += rstd * (g - xhat * mean(g * xhat)), g = dout * (1 + scale) * w.
__global__ void rmsnorm_bwd_dx_kernel(Ptr dx, Ptr dout, Ptr x, Ptr w, Ptr scale,
                                      int64_t rows_per_param, const float* rstd, int64_t N,
                                      int64_t C) {
  int64_t n = blockIdx.x * (int64_t)kRowsPerBlock + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (n >= N) return;
  const int64_t prow = n / rows_per_param;
  float rs = rstd[n];
  float sgx = 0.f;
  for (int64_t c = lane; c < C; c += 32) {
    float g = dout.ld2(n, c, C);
    if (scale.valid()) g *= 1.f + scale.ld2(prow, c, C);
    if (w.valid()) g *= w.ld(c);
    sgx += g * x.ld2(n, c, C) * rs;
  }
  sgx = warp_sum(sgx) / C;
  for (int64_t c = lane; c < C; c += 32) {
    float g = dout.ld2(n, c, C);
    if (scale.valid()) g *= 1.f + scale.ld2(prow, c, C);
    if (w.valid()) g *= w.ld(c);
    float xh = x.ld2(n, c, C) * rs;
    dx.add2(n, c, C, rs * (g - xh * sgx));
  }
}

// dw over all rows: acc[0] += dout * (1 + scale[p]) * xhat.
struct RmsWeightGrad {
  Ptr dout, x, scale;
  const float* rstd;
  int64_t C, rows_per_param;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    float g = dout.ld2(n, c, C);
    if (scale.valid()) g *= 1.f + scale.ld2(n / rows_per_param, c, C);
    acc[0] += g * x.ld2(n, c, C) * rstd[n];
  }
};

// Per parameter row: acc[0] (dshift) += dout, acc[1] (dscale) += dout * xhat * w.
struct RmsModGrad {
  Ptr dout, x, w;
  const float* rstd;
  int64_t C;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    float g = dout.ld2(n, c, C);
    float y = x.ld2(n, c, C) * rstd[n];
    if (w.valid()) y *= w.ld(c);
    acc[0] += g;
    acc[1] += g * y;
  }
};

int row_blocks(int64_t N) {
  return static_cast<int>((N + kRowsPerBlock - 1) / kRowsPerBlock);
}

void check_stats(const Tensor& t, int64_t N, const char* op, const char* arg) {
  f32_ptr(t, op, arg);
  require_numel(t, N, op, arg);
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps) {
  const char* op = "cuda::layernorm_forward";
  require(x, op, "x");
  int64_t C = last_dim(x), N = x.numel() / C;
  require_numel(out, N * C, op, "out");
  require_numel(w, C, op, "w");
  require_numel(b, C, op, "b");
  check_stats(mean, N, op, "mean");
  check_stats(rstd, N, op, "rstd");
  if (N == 0) return;
  if (fast_layernorm_forward(out, f32_ptr(mean, op, "mean"), f32_ptr(rstd, op, "rstd"), x, w, b,
                             eps))
    return;
  layernorm_fwd_kernel<<<row_blocks(N), 256, 0, cur_stream()>>>(
      ptr(out, op, "out"), f32_ptr(mean, op, "mean"), f32_ptr(rstd, op, "rstd"), ptr(x, op, "x"),
      ptr(w, op, "w"), ptr(b, op, "b"), N, C, (float)eps);
  RAE_CUDA_LAUNCHED(op);
}

void layernorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd) {
  const char* op = "cuda::layernorm_backward";
  require(x, op, "x");
  require(dout, op, "dout");
  int64_t C = last_dim(x), N = x.numel() / C;
  require_numel(dout, N * C, op, "dout");
  require_numel(dx, N * C, op, "dx");
  require_numel(w, C, op, "w");
  require_numel(dw, C, op, "dw");
  require_numel(db, C, op, "db");
  check_stats(mean, N, op, "mean");
  check_stats(rstd, N, op, "rstd");
  if (N == 0) return;
  if (dx.defined()) {
    layernorm_bwd_dx_kernel<<<row_blocks(N), 256, 0, cur_stream()>>>(
        ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(x, op, "x"), ptr(w, op, "w"),
        f32_ptr(mean, op, "mean"), f32_ptr(rstd, op, "rstd"), N, C);
    RAE_CUDA_LAUNCHED(op);
  }
  if (dw.defined() || db.defined()) {
    LayerNormParamGrad f{ptr(dout, op, "dout"), ptr(x, op, "x"), f32_ptr(mean, op, "mean"),
                         f32_ptr(rstd, op, "rstd"), C};
    col_reduce<2>(f, 1, N, C, ptr(dw, op, "dw"), ptr(db, op, "db"));
  }
}

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                     double eps) {
  rmsnorm_modulate_forward(out, rstd, x, w, Tensor(), Tensor(), eps);
}

void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                      const Tensor& w, const Tensor& rstd) {
  rmsnorm_modulate_backward(dx, dw, Tensor(), Tensor(), dout, x, w, Tensor(), rstd);
}

void rmsnorm_modulate_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& w, const Tensor& shift, const Tensor& scale,
                              double eps) {
  const char* op = "cuda::rmsnorm_modulate_forward";
  require(x, op, "x");
  require(out, op, "out");
  int64_t C = last_dim(x), N = x.numel() / C;
  require_numel(out, N * C, op, "out");
  require_numel(w, C, op, "w");
  ParamRows pr{1, N};
  if (scale.defined()) pr = param_rows_for(scale, N, C, op, "scale");
  if (shift.defined()) {
    ParamRows ps = param_rows_for(shift, N, C, op, "shift");
    RAE_CHECK(!scale.defined() || ps.param_rows == pr.param_rows, op,
              ": shift and scale have different shapes");
    pr = ps;
  }
  float* rs = nullptr;
  if (rstd.defined()) {
    check_stats(rstd, N, op, "rstd");
    rs = f32_ptr(rstd, op, "rstd");
  }
  if (N == 0) return;
  if (fast_rmsnorm_modulate_forward(out, rs, x, w, shift, scale, pr, eps)) return;
  rmsnorm_fwd_kernel<<<row_blocks(N), 256, 0, cur_stream()>>>(
      ptr(out, op, "out"), rs, ptr(x, op, "x"), ptr(w, op, "w"), ptr(shift, op, "shift"),
      ptr(scale, op, "scale"), pr.rows_per_param, N, C, (float)eps);
  RAE_CUDA_LAUNCHED(op);
}

void rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                               const Tensor& dscale, const Tensor& dout, const Tensor& x,
                               const Tensor& w, const Tensor& scale, const Tensor& rstd,
                               GradMode mode) {
  const char* op = "cuda::rmsnorm_modulate_backward";
  require(x, op, "x");
  require(dout, op, "dout");
  int64_t C = last_dim(x), N = x.numel() / C;
  require_numel(dout, N * C, op, "dout");
  require_numel(dx, N * C, op, "dx");
  require_numel(w, C, op, "w");
  require_numel(dw, C, op, "dw");
  check_stats(rstd, N, op, "rstd");
  ParamRows pr{1, N};
  if (scale.defined()) pr = param_rows_for(scale, N, C, op, "scale");
  if (dscale.defined()) {
    RAE_CHECK(scale.defined(), op, ": dscale given without scale");
    require_numel(dscale, scale.numel(), op, "dscale");
  }
  if (dshift.defined()) {
    ParamRows ps = param_rows_for(dshift, N, C, op, "dshift");
    RAE_CHECK(!scale.defined() || ps.param_rows == pr.param_rows, op,
              ": dshift and scale have different shapes");
    pr = ps;
  }
  if (N == 0) return;
  const float* rs = f32_ptr(rstd, op, "rstd");
  const bool overwrite = mode == GradMode::Overwrite;
  if (fast_rmsnorm_modulate_backward(dx, dw, dshift, dscale, dout, x, w, scale, rs, pr, overwrite))
    return;
  if (overwrite) {  // the scalar kernels accumulate
    zero_grad_buffer(dshift);
    zero_grad_buffer(dscale);
  }
  if (dx.defined()) {
    rmsnorm_bwd_dx_kernel<<<row_blocks(N), 256, 0, cur_stream()>>>(
        ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(x, op, "x"), ptr(w, op, "w"),
        ptr(scale, op, "scale"), pr.rows_per_param, rs, N, C);
    RAE_CUDA_LAUNCHED(op);
  }
  if (dw.defined()) {
    RmsWeightGrad f{ptr(dout, op, "dout"), ptr(x, op, "x"), ptr(scale, op, "scale"), rs, C,
                    pr.rows_per_param};
    col_reduce<1>(f, 1, N, C, ptr(dw, op, "dw"));
  }
  if (dshift.defined() || dscale.defined()) {
    RmsModGrad f{ptr(dout, op, "dout"), ptr(x, op, "x"), ptr(w, op, "w"), rs, C};
    col_reduce<2>(f, pr.param_rows, pr.rows_per_param, C, ptr(dshift, op, "dshift"),
                  ptr(dscale, op, "dscale"));
  }
}

}  // namespace rae::ops::cuda
