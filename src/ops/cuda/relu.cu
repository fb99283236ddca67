// CUDA LeakyReLU (ReLU = slope 0), forward and backward, F32 math on F32/BF16 row-strided data.
#include "ops/cuda/common.cuh"
#include "ops/relu.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

__global__ void leaky_fwd_kernel(Ptr out, Ptr x, int64_t N, int64_t C, float slope) {
  RAE_ROW_LOOP(r, c, N, C) {
    const float v = x.ld2(r, c, C);
    out.st2(r, c, C, v > 0.f ? v : v * slope);
  }
}

__global__ void leaky_bwd_kernel(Ptr dx, Ptr dout, Ptr x, int64_t N, int64_t C, float slope) {
  RAE_ROW_LOOP(r, c, N, C) {
    const float g = dout.ld2(r, c, C);
    dx.add2(r, c, C, x.ld2(r, c, C) > 0.f ? g : g * slope);
  }
}

}  // namespace

void leaky_relu_forward(const Tensor& out, const Tensor& x, double slope) {
  const char* op = "cuda::leaky_relu_forward";
  const int64_t C = last_dim(x), N = x.numel() / C;
  leaky_fwd_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), N, C, static_cast<float>(slope));
  RAE_CUDA_LAUNCHED(op);
}

void leaky_relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double slope) {
  const char* op = "cuda::leaky_relu_backward";
  const int64_t C = last_dim(x), N = x.numel() / C;
  leaky_bwd_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(x, op, "x"), N, C, static_cast<float>(slope));
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
