// CUDA noise augmentation: every element draws its own normal from the counter RNG (the same
// stream as the CPU's), sigma per sample from element 0 of the sample's stream.
#include "core/rng.h"
#include "ops/cuda/common.cuh"
#include "ops/noise.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

__global__ void noise_kernel(Ptr z, const int64_t* ids, NoiseAugKey key, int64_t B, int64_t per,
                             float* sigma) {
  const int64_t total = B * per;
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total;
       q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = q / per, i = q % per;
    const rng::Key k{key.seed, rng::Purpose::NoiseAug, key.step, static_cast<uint64_t>(ids[b])};
    const float s = static_cast<float>(key.tau) * rng::uniform_at(k, 0);
    if (sigma && i == 0) sigma[b] = s;
    z.st(q, z.ld(q) + s * rng::normal_at(k, 4 + static_cast<uint64_t>(i)));
  }
}

}  // namespace

void noise_augment_(const Tensor& z, const Tensor& ids, const NoiseAugKey& key,
                    const Tensor& sigma) {
  const char* op = "cuda::noise_augment_";
  const int64_t B = z.dim(0), per = z.numel() / B;
  noise_kernel<<<grid_1d(z.numel()), 256, 0, cur_stream()>>>(
      ptr(z, op, "z"), static_cast<const int64_t*>(ids.raw()), key, B, per,
      sigma.defined() ? static_cast<float*>(sigma.raw()) : nullptr);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
