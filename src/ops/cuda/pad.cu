// CUDA circular padding of (N, L, C) sequences, F32 math on F32/BF16 data; the backward
// gathers (no atomics).
#include "ops/cuda/common.cuh"
#include "ops/pad.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

__global__ void pad_fwd_kernel(Ptr out, Ptr x, int64_t N, int64_t L, int64_t C, int64_t pad) {
  const int64_t P = L + 2 * pad, total = N * P * C;
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total;
       q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = q % C, i = (q / C) % P, n = q / (C * P);
    const int64_t j = ((i - pad) % L + L) % L;
    out.st(q, x.ld((n * L + j) * C + c));
  }
}

__global__ void pad_bwd_kernel(Ptr dx, Ptr dout, int64_t N, int64_t L, int64_t C, int64_t pad) {
  const int64_t P = L + 2 * pad, total = N * L * C;
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total;
       q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = q % C, j = (q / C) % L, n = q / (C * L);
    float s = 0.f;
    for (int64_t i = j + pad - L; i <= j + pad + L; i += L)
      if (i >= 0 && i < P) s += dout.ld((n * P + i) * C + c);
    dx.add(q, s);
  }
}

}  // namespace

void pad_circular1d_forward(const Tensor& out, const Tensor& x, int64_t pad) {
  const char* op = "cuda::pad_circular1d_forward";
  pad_fwd_kernel<<<grid_1d(out.numel()), 256, 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), x.dim(0), x.dim(1), x.dim(2), pad);
  RAE_CUDA_LAUNCHED(op);
}

void pad_circular1d_backward(const Tensor& dx, const Tensor& dout, int64_t pad) {
  const char* op = "cuda::pad_circular1d_backward";
  pad_bwd_kernel<<<grid_1d(dx.numel()), 256, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), dx.dim(0), dx.dim(1), dx.dim(2), pad);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
