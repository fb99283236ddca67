// Small kernels of the sharding core (CUDA builds). They run on the legacy default stream, the
// stream the tensor library's copies and casts use.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"

namespace rae::distributed::cuda_kernels {

namespace {
__global__ void accumulate_kernel(float* __restrict__ dst, const float* __restrict__ src,
                                  int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}
}  // namespace

void accumulate_f32(float* dst, const float* src, int64_t n) {
  if (n == 0) return;
  int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535) blocks = 65535;
  accumulate_kernel<<<static_cast<unsigned>(blocks), threads>>>(dst, src, n);
  cudaError_t e = cudaGetLastError();
  RAE_CHECK(e == cudaSuccess, "dist accumulate kernel: ", cudaGetErrorString(e));
}

}  // namespace rae::distributed::cuda_kernels
