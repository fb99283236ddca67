// Stage-1 noise augmentation of the encoder's tokens (the RAE release's RAE.noising, seed
// finding #3): z + sigma_b * eps with sigma_b = tau * U(0, 1) per sample and eps ~ N(0, 1) per
// element, drawn from the counter RNG (core/rng.h) keyed by (seed, NoiseAug, step, global sample
// id): the uniform is element 0 of the sample's stream and eps element i is its normal 4 + i
// (a different Philox block), so a sample's noise does not depend on the rank, the micro-batch
// or the backend (CPU and CUDA draw the same numbers; the CUDA normals may differ in the last
// bits of logf/sinf/cosf).
//
// z (B, ...) F32/F64 contiguous, updated in place; ids (B) I64 on z's device; sigma (B) F32
// receives the per-sample sigma (may be undefined).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace rae::ops {

struct NoiseAugKey {
  uint64_t seed = 0, step = 0;
  double tau = 0.8;
};

void noise_augment_(const Tensor& z, const Tensor& ids, const NoiseAugKey& key,
                    const Tensor& sigma);

namespace cpu {
void noise_augment_(const Tensor& z, const Tensor& ids, const NoiseAugKey& key,
                    const Tensor& sigma);
}
namespace cuda {
void noise_augment_(const Tensor& z, const Tensor& ids, const NoiseAugKey& key,
                    const Tensor& sigma);
}

}  // namespace rae::ops
