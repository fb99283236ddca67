// CUDA side of diffusion::draw_flow_batch: the same per-sample functions (diffusion/flow.h) as
// the CPU loop, one thread per noise element, the first thread of each sample also drawing its
// time and label.
#include <cuda_runtime.h>

#include "core/error.h"
#include "diffusion/flow.h"
#include "tensor/cuda_stream.cuh"

namespace rae::diffusion::cuda {

namespace {

__global__ void flow_draw_kernel(FlowDraws d, const int64_t* __restrict__ ids,
                                 const int32_t* __restrict__ labels, float* __restrict__ eps,
                                 float* __restrict__ t, int32_t* __restrict__ y, int64_t B,
                                 int64_t D) {
  const int64_t n = B * D;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = k / D, i = k - b * D;
    const uint64_t sample = static_cast<uint64_t>(ids[b]);
    eps[k] = flow_noise(d, sample, static_cast<uint64_t>(i));
    if (i == 0) {
      t[b] = flow_time(d, sample);
      y[b] = flow_label(d, sample, labels[b]);
    }
  }
}

}  // namespace

void draw_flow_batch(const FlowDraws& d, const Tensor& ids, const Tensor& labels, const Tensor& eps,
                     const Tensor& t, const Tensor& y) {
  const int64_t B = ids.numel(), D = B > 0 ? eps.numel() / B : 0;
  if (B == 0 || D == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((B * D + threads - 1) / threads, 65535);
  flow_draw_kernel<<<static_cast<unsigned>(blocks), threads, 0, cur_stream()>>>(
      d, static_cast<const int64_t*>(ids.raw()), static_cast<const int32_t*>(labels.raw()),
      static_cast<float*>(eps.raw()), static_cast<float*>(t.raw()), static_cast<int32_t*>(y.raw()),
      B, D);
  cudaError_t e = cudaGetLastError();
  RAE_CHECK(e == cudaSuccess,
            "cuda::draw_flow_batch: kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace rae::diffusion::cuda
