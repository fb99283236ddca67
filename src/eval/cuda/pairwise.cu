// CUDA side of eval/pairwise.h: one warp per row of the distance block. Lanes stride over the
// columns (coalesced reads of the row-major block); the k1-smallest reduction keeps a sorted list
// per lane and merges the lanes by k1 rounds of a warp minimum. Same float32 arithmetic as the
// CPU loops (2 * G is exact, so a fused multiply-add gives the same value).
#include <cuda_runtime.h>

#include <cmath>

#include "core/error.h"
#include "eval/pairwise.h"
#include "tensor/cuda_stream.cuh"

#define RAE_EVAL_CUDA_CHECK(expr)                                                      \
  do {                                                                                 \
    cudaError_t e_ = (expr);                                                           \
    RAE_CHECK(e_ == cudaSuccess, "CUDA error ", cudaGetErrorString(e_), " in " #expr); \
  } while (0)

namespace rae::eval::pairwise::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float sq_dist(float nu, float g, float nv) {
  return fmaxf(__fadd_rn(__fsub_rn(nu, __fmul_rn(2.0f, g)), nv), 0.0f);
}

template <int K1>
__global__ void smallest_kernel(const float* __restrict__ g, const float* __restrict__ nu,
                                const float* __restrict__ nv, float* __restrict__ state,
                                int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  float s[K1];
#pragma unroll
  for (int t = 0; t < K1; ++t) s[t] = lane == 0 ? state[row * K1 + t] : INFINITY;
  const float* gi = g + row * cols;
  const float u = nu[row];
  for (int64_t j = lane; j < cols; j += 32) {
    float d = sq_dist(u, gi[j], nv[j]);
    if (!(d < s[K1 - 1])) continue;
    s[K1 - 1] = d;  // then bubble it down to its place
#pragma unroll
    for (int t = K1 - 1; t > 0; --t) {
      if (s[t] < s[t - 1]) {
        const float x = s[t];
        s[t] = s[t - 1];
        s[t - 1] = x;
      }
    }
  }
  // Merge: K1 rounds; each round takes the smallest head over the warp and pops it.
#pragma unroll
  for (int t = 0; t < K1; ++t) {
    float v = s[0];
    int owner = lane;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, v, off);
      int oo = __shfl_xor_sync(0xffffffffu, owner, off);
      if (ov < v || (ov == v && oo < owner)) {
        v = ov;
        owner = oo;
      }
    }
    if (lane == 0) state[row * K1 + t] = v;
    if (lane == owner) {
#pragma unroll
      for (int q = 0; q < K1 - 1; ++q) s[q] = s[q + 1];
      s[K1 - 1] = INFINITY;
    }
  }
}

__global__ void within_kernel(const float* __restrict__ g, const float* __restrict__ nu,
                              const float* __restrict__ nv, const float* __restrict__ ru,
                              const float* __restrict__ rv, int32_t* __restrict__ fu,
                              int32_t* __restrict__ fv, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const float* gi = g + row * cols;
  const float u = nu[row], r = ru[row];
  bool in = false;
  for (int64_t j = lane; j < cols; j += 32) {
    float d = sq_dist(u, gi[j], nv[j]);
    in = in || d <= rv[j];
    if (d <= r) fv[j] = 1;  // benign race: every writer stores 1
  }
  in = __any_sync(0xffffffffu, in);
  if (lane == 0 && in) fu[row] = 1;
}

unsigned grid_for(int64_t rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

void update_smallest(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                     const Tensor& state) {
  const int64_t rows = dots.dim(0), cols = dots.dim(1);
  if (rows == 0) return;
  const float* g = dots.data<float>();
  const float* nu = row_norms.data<float>();
  const float* nv = col_norms.data<float>();
  float* st = state.data<float>();
  const unsigned grid = grid_for(rows), block = 32 * kWarpsPerBlock;
  switch (state.dim(1)) {
#define RAE_SMALLEST_CASE(K)                                                         \
  case K:                                                                            \
    smallest_kernel<K><<<grid, block, 0, cur_stream()>>>(g, nu, nv, st, rows, cols); \
    break;
    RAE_SMALLEST_CASE(1)
    RAE_SMALLEST_CASE(2)
    RAE_SMALLEST_CASE(3)
    RAE_SMALLEST_CASE(4)
    RAE_SMALLEST_CASE(5)
    RAE_SMALLEST_CASE(6)
    RAE_SMALLEST_CASE(7)
    RAE_SMALLEST_CASE(8)
#undef RAE_SMALLEST_CASE
    default:
      RAE_THROW("pairwise::update_smallest: k + 1 = ", state.dim(1), " is not in 1..",
                kMaxSmallest);
  }
  RAE_EVAL_CUDA_CHECK(cudaPeekAtLastError());
}

void update_within(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                   const Tensor& row_radii, const Tensor& col_radii, const Tensor& row_flags,
                   const Tensor& col_flags) {
  const int64_t rows = dots.dim(0), cols = dots.dim(1);
  if (rows == 0) return;
  within_kernel<<<grid_for(rows), 32 * kWarpsPerBlock, 0, cur_stream()>>>(
      dots.data<float>(), row_norms.data<float>(), col_norms.data<float>(), row_radii.data<float>(),
      col_radii.data<float>(), row_flags.data<int32_t>(), col_flags.data<int32_t>(), rows, cols);
  RAE_EVAL_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace rae::eval::pairwise::cuda
