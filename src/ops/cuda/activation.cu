// CUDA pointwise activations: GELU (exact, tanh), SiLU, SwiGLU. F32 math on F32 or BF16 data.
#include "ops/activation.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/fast_paths.cuh"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluC = 0.044715f;

__device__ __forceinline__ float gelu_f(float x, bool tanh_kind) {
  if (tanh_kind) return 0.5f * x * (1.f + tanhf(kSqrt2OverPi * (x + kGeluC * x * x * x)));
  return 0.5f * x * (1.f + erff(x * kInvSqrt2));
}
__device__ __forceinline__ float gelu_grad(float x, bool tanh_kind) {
  if (tanh_kind) {
    float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    float th = tanhf(u);
    return 0.5f * (1.f + th) +
           0.5f * x * (1.f - th * th) * kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
  }
  return 0.5f * (1.f + erff(x * kInvSqrt2)) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
}
__device__ __forceinline__ float sigmoid_f(float x) {
  return 1.f / (1.f + expf(-x));
}

__global__ void gelu_fwd_kernel(Ptr out, Ptr x, int64_t n, bool tanh_kind) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    out.st(i, gelu_f(x.ld(i), tanh_kind));
}
__global__ void gelu_bwd_kernel(Ptr dx, Ptr dout, Ptr x, int64_t n, bool tanh_kind) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dx.add(i, dout.ld(i) * gelu_grad(x.ld(i), tanh_kind));
}
__global__ void silu_fwd_kernel(Ptr out, Ptr x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    float v = x.ld(i);
    out.st(i, v * sigmoid_f(v));
  }
}
__global__ void silu_bwd_kernel(Ptr dx, Ptr dout, Ptr x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    float v = x.ld(i), s = sigmoid_f(v);
    dx.add(i, dout.ld(i) * s * (1.f + v * (1.f - s)));
  }
}
// out (N, H) = silu(x1) * x2 with x12 (N, 2H) = [x1 | x2].
__global__ void swiglu_fwd_kernel(Ptr out, Ptr x12, int64_t N, int64_t H) {
  RAE_ROW_LOOP(r, c, N, H) {
    float a = x12.ld2(r, c, 2 * H), b = x12.ld2(r, H + c, 2 * H);
    out.st2(r, c, H, a * sigmoid_f(a) * b);
  }
}
__global__ void swiglu_bwd_kernel(Ptr dx12, Ptr dout, Ptr x12, int64_t N, int64_t H) {
  RAE_ROW_LOOP(r, c, N, H) {
    float a = x12.ld2(r, c, 2 * H), b = x12.ld2(r, H + c, 2 * H), g = dout.ld2(r, c, H);
    float s = sigmoid_f(a);
    dx12.add2(r, c, 2 * H, g * b * s * (1.f + a * (1.f - s)));
    dx12.add2(r, H + c, 2 * H, g * a * s);
  }
}

void same_numel(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  require(a, op, an);
  require(b, op, bn);
  RAE_CHECK(a.numel() == b.numel(), op, ": '", an, "' ", a.str(), " and '", bn, "' ", b.str(),
            " differ in size");
}

}  // namespace

void gelu_forward(const Tensor& out, const Tensor& x, GeluKind kind) {
  const char* op = "cuda::gelu_forward";
  same_numel(out, x, op, "out", "x");
  int64_t n = x.numel();
  if (n == 0) return;
  gelu_fwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(out, op, "out"), ptr(x, op, "x"), n,
                                                        kind == GeluKind::Tanh);
  RAE_CUDA_LAUNCHED(op);
}

void gelu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, GeluKind kind) {
  const char* op = "cuda::gelu_backward";
  if (!dx.defined()) return;
  same_numel(dx, x, op, "dx", "x");
  same_numel(dout, x, op, "dout", "x");
  int64_t n = x.numel();
  if (n == 0) return;
  gelu_bwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(dx, op, "dx"), ptr(dout, op, "dout"),
                                                        ptr(x, op, "x"), n, kind == GeluKind::Tanh);
  RAE_CUDA_LAUNCHED(op);
}

void silu_forward(const Tensor& out, const Tensor& x) {
  const char* op = "cuda::silu_forward";
  same_numel(out, x, op, "out", "x");
  int64_t n = x.numel();
  if (n == 0) return;
  silu_fwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(out, op, "out"), ptr(x, op, "x"), n);
  RAE_CUDA_LAUNCHED(op);
}

void silu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x) {
  const char* op = "cuda::silu_backward";
  if (!dx.defined()) return;
  same_numel(dx, x, op, "dx", "x");
  same_numel(dout, x, op, "dout", "x");
  int64_t n = x.numel();
  if (n == 0) return;
  silu_bwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(dx, op, "dx"), ptr(dout, op, "dout"),
                                                        ptr(x, op, "x"), n);
  RAE_CUDA_LAUNCHED(op);
}

void swiglu_forward(const Tensor& out, const Tensor& x12) {
  const char* op = "cuda::swiglu_forward";
  require(out, op, "out");
  require(x12, op, "x12");
  int64_t H2 = last_dim(x12);
  RAE_CHECK(H2 % 2 == 0, op, ": x12 ", x12.str(), " has an odd last dim");
  int64_t H = H2 / 2, N = x12.numel() / H2;
  RAE_CHECK(last_dim(out) == H && out.numel() == N * H, op, ": out ", out.str(), ", expected (", N,
            ", ", H, ")");
  if (N * H == 0) return;
  if (fast_swiglu_forward(out, x12)) return;
  swiglu_fwd_kernel<<<grid_rows(N), threads_for_cols(H), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x12, op, "x12"), N, H);
  RAE_CUDA_LAUNCHED(op);
}

void swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12, GradMode mode) {
  const char* op = "cuda::swiglu_backward";
  if (!dx12.defined()) return;
  require(x12, op, "x12");
  require(dout, op, "dout");
  same_numel(dx12, x12, op, "dx12", "x12");
  int64_t H2 = last_dim(x12);
  RAE_CHECK(H2 % 2 == 0, op, ": x12 ", x12.str(), " has an odd last dim");
  int64_t H = H2 / 2, N = x12.numel() / H2;
  RAE_CHECK(dout.numel() == N * H, op, ": dout ", dout.str(), ", expected (", N, ", ", H, ")");
  if (N * H == 0) return;
  const bool overwrite = mode == GradMode::Overwrite;
  if (fast_swiglu_backward(dx12, dout, x12, overwrite)) return;
  if (overwrite) zero_grad_buffer(dx12);  // the scalar kernel accumulates
  swiglu_bwd_kernel<<<grid_rows(N), threads_for_cols(H), 0, cur_stream()>>>(
      ptr(dx12, op, "dx12"), ptr(dout, op, "dout"), ptr(x12, op, "x12"), N, H);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
