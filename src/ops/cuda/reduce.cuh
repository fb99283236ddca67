// Deterministic device sums for scalar losses: a grid-stride loop sums f(i) in double per
// thread, each block reduces its threads in a fixed order, and the host adds the block partials
// in order. The grid depends only on n, so a result repeats bit for bit.
#pragma once
#include <algorithm>
#include <vector>

#include "ops/cuda/common.cuh"

namespace rae::ops::cuda_detail {

constexpr int kSumBlocks = 512;
constexpr int kSumThreads = 256;

template <class F>
__global__ void sum_partials_kernel(F f, int64_t n, double* partial) {
  __shared__ double warp_part[32];
  double s = 0.0;
  RAE_GRID_LOOP(i, n) s += f(i);
  s = warp_sum_d(s);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = s;
  __syncthreads();
  if (warp == 0) {
    double t = lane < (int)(blockDim.x >> 5) ? warp_part[lane] : 0.0;
    t = warp_sum_d(t);
    if (lane == 0) partial[blockIdx.x] = t;
  }
}

// sum over i in [0, n) of f(i) (a __device__ functor returning double).
template <class F>
double device_sum(F f, int64_t n, const char* op) {
  if (n <= 0) return 0.0;
  const int blocks =
      static_cast<int>(std::min<int64_t>(kSumBlocks, (n + kSumThreads - 1) / kSumThreads));
  Tensor part = Tensor::empty({blocks}, DType::F64, Device::cuda(current_device()));
  sum_partials_kernel<F><<<blocks, kSumThreads>>>(f, n, static_cast<double*>(part.raw()));
  RAE_CUDA_LAUNCHED(op);
  std::vector<double> host(static_cast<size_t>(blocks));
  RAE_CUDA_CHECK(
      cudaMemcpy(host.data(), part.raw(), blocks * sizeof(double), cudaMemcpyDeviceToHost));
  double s = 0.0;
  for (double v : host) s += v;
  return s;
}

}  // namespace rae::ops::cuda_detail
