// CUDA side of diffusion/latent_norm.h. The _rn intrinsics keep every operation separately and
// correctly rounded (no FMA contraction), so the results equal the CPU version bit for bit.
#include <cuda_runtime.h>

#include "core/error.h"
#include "diffusion/latent_norm.h"
#include "tensor/cuda_stream.cuh"

namespace rae::diffusion::cuda {

namespace {

template <bool kForward>
__global__ void latent_norm_kernel(float* __restrict__ z, const float* __restrict__ mean,
                                   const float* __restrict__ var, float eps, int64_t d, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = i % d;
    const float sd = __fsqrt_rn(__fadd_rn(var[j], eps));
    z[i] = kForward ? __fdiv_rn(__fsub_rn(z[i], mean[j]), sd)
                    : __fadd_rn(__fmul_rn(z[i], sd), mean[j]);
  }
}

template <bool kForward>
void launch(const Tensor& z, const LatentStats& s, const char* op) {
  const int64_t n = z.numel();
  if (n == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535);
  latent_norm_kernel<kForward><<<static_cast<unsigned>(blocks), threads, 0, cur_stream()>>>(
      static_cast<float*>(z.raw()), static_cast<const float*>(s.mean.raw()),
      static_cast<const float*>(s.var.raw()), static_cast<float>(s.eps), s.mean.numel(), n);
  cudaError_t e = cudaGetLastError();
  RAE_CHECK(e == cudaSuccess, op, ": kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace

void normalize_latents(const Tensor& z, const LatentStats& s) {
  launch<true>(z, s, "cuda::normalize_latents");
}

void denormalize_latents(const Tensor& z, const LatentStats& s) {
  launch<false>(z, s, "cuda::denormalize_latents");
}

}  // namespace rae::diffusion::cuda
