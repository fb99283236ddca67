// CUDA spectral normalisation: one block per call does the power iteration, sigma and the
// normalised weight (the discriminator heads' matrices are ~384 x 3456, a few microseconds), so
// sigma never leaves the device; sums in a fixed order (deterministic).
#include "ops/cuda/common.cuh"
#include "ops/spectral_norm.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

constexpr int kThreads = 1024;

// Block-wide sum in double (blockDim.x = kThreads); every thread gets the result.
__device__ double block_sum_d(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double t = lane < (int)(blockDim.x >> 5) ? shared[lane] : 0.0;
  return warp_sum_d(t);
}

// wv[o] = sum_k W[o, k] v[k], one warp per row.
__device__ void matvec(Ptr W, const float* v, float* wv, int64_t O, int64_t K) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t o = warp; o < O; o += warps) {
    float s = 0.f;
    for (int64_t k = lane; k < K; k += 32) s += W.ld(o * K + k) * v[k];
    s = warp_sum(s);
    if (lane == 0) wv[o] = s;
  }
  __syncthreads();
}

// x[i] /= max(||x||, eps) for i < n.
__device__ void normalize(float* x, int64_t n, float eps, double* shared) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i] * x[i];
  const float norm = fmaxf(static_cast<float>(sqrt(block_sum_d(s, shared))), eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) x[i] /= norm;
  __syncthreads();
}

// u, v (F32 buffers) updated in place; scratch wv (O) F32.
__global__ void sn_forward_kernel(Ptr w_sn, float* sigma, Ptr W, float* u, float* v, float* wv,
                                  int64_t O, int64_t K, int iters, float eps) {
  __shared__ double shared[32];
  for (int it = 0; it < iters; ++it) {
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {  // v = W^T u, coalesced over k
      float s = 0.f;
      for (int64_t o = 0; o < O; ++o) s += W.ld(o * K + k) * u[o];
      v[k] = s;
    }
    __syncthreads();
    normalize(v, K, eps, shared);
    matvec(W, v, u, O, K);
    normalize(u, O, eps, shared);
  }
  matvec(W, v, wv, O, K);
  double s = 0;
  for (int64_t o = threadIdx.x; o < O; o += blockDim.x) s += (double)u[o] * wv[o];
  const float sg = static_cast<float>(block_sum_d(s, shared));
  if (threadIdx.x == 0) *sigma = sg;
  for (int64_t i = threadIdx.x; i < O * K; i += blockDim.x) w_sn.st(i, W.ld(i) / sg);
}

// c = sum(G * W) / sigma^2, then dW += G / sigma - c u v^T.
__global__ void sn_backward_kernel(Ptr dW, Ptr G, Ptr W, const float* u, const float* v,
                                   const float* sigma, int64_t O, int64_t K) {
  __shared__ double shared[32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < O * K; i += blockDim.x) s += (double)G.ld(i) * W.ld(i);
  const float sg = *sigma;
  const float c = static_cast<float>(block_sum_d(s, shared) / ((double)sg * sg));
  for (int64_t i = threadIdx.x; i < O * K; i += blockDim.x)
    dW.add(i, G.ld(i) / sg - c * u[i / K] * v[i % K]);
}

}  // namespace

void spectral_norm_forward(const Tensor& w_sn, const Tensor& sigma, const Tensor& w,
                           const Tensor& u, const Tensor& v, int power_iterations, double eps) {
  const char* op = "cuda::spectral_norm_forward";
  const int64_t O = w.dim(0), K = w.numel() / O;
  Tensor wv = Tensor::empty({O}, DType::F32, w.device());
  sn_forward_kernel<<<1, kThreads, 0, cur_stream()>>>(
      ptr(w_sn, op, "w_sn"), f32_ptr(sigma, op, "sigma"), ptr(w, op, "w"), f32_ptr(u, op, "u"),
      f32_ptr(v, op, "v"), f32_ptr(wv, op, "wv"), O, K, power_iterations, static_cast<float>(eps));
  RAE_CUDA_LAUNCHED(op);
}

void spectral_norm_backward(const Tensor& dw, const Tensor& dw_sn, const Tensor& w, const Tensor& u,
                            const Tensor& v, const Tensor& sigma) {
  const char* op = "cuda::spectral_norm_backward";
  const int64_t O = w.dim(0), K = w.numel() / O;
  sn_backward_kernel<<<1, kThreads, 0, cur_stream()>>>(
      ptr(dw, op, "dw"), ptr(dw_sn, op, "dw_sn"), ptr(w, op, "w"), f32_ptr(u, op, "u"),
      f32_ptr(v, op, "v"), f32_ptr(sigma, op, "sigma"), O, K);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
