// Deterministic device sums for scalar losses: a grid-stride loop sums f(i) in double per
// thread, each block reduces its threads in a fixed order, and the host (or one device thread,
// device_sum_into) adds the block partials in order. The grid depends only on n, so a result
// repeats bit for bit.
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

// The kSumBlocks-or-fewer block partials of sum over i in [0, n) of f(i) (a __device__ functor
// returning double), as an F64 device tensor; n > 0.
template <class F>
Tensor device_sum_partials(F f, int64_t n, const char* op) {
  const int blocks =
      static_cast<int>(std::min<int64_t>(kSumBlocks, (n + kSumThreads - 1) / kSumThreads));
  Tensor part = Tensor::empty({blocks}, DType::F64, Device::cuda(current_device()));
  sum_partials_kernel<F>
      <<<blocks, kSumThreads, 0, cur_stream()>>>(f, n, static_cast<double*>(part.raw()));
  RAE_CUDA_LAUNCHED(op);
  return part;
}

// sum over i in [0, n) of f(i), on the host (reads the partials back: not inside a graph capture).
template <class F>
double device_sum(F f, int64_t n, const char* op) {
  if (n <= 0) return 0.0;
  Tensor part = device_sum_partials(f, n, op);
  std::vector<double> host(static_cast<size_t>(part.numel()));
  RAE_CUDA_CHECK(
      cudaMemcpy(host.data(), part.raw(), host.size() * sizeof(double), cudaMemcpyDeviceToHost));
  double s = 0.0;
  for (double v : host) s += v;
  return s;
}

// *dst += scale * (sum of the partials, in order / divisor): device_sum's arithmetic, left on
// the device (so a captured step keeps its scalars there).
// (A template only so the header can define it in every translation unit.)
template <int kUnused = 0>
__global__ void add_partials_kernel(const double* part, int64_t blocks, double* dst, double scale,
                                    double divisor) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s = 0.0;
  for (int64_t i = 0; i < blocks; ++i) s += part[i];
  *dst += scale * (s / divisor);
}

template <class F>
void device_sum_into(F f, int64_t n, double* dst, double scale, double divisor, const char* op) {
  if (n <= 0) return;
  Tensor part = device_sum_partials(f, n, op);
  add_partials_kernel<><<<1, 32, 0, cur_stream()>>>(static_cast<const double*>(part.raw()),
                                                    part.numel(), dst, scale, divisor);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda_detail
