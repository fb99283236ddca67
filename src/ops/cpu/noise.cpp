// CPU noise augmentation: the counter RNG per sample, samples in parallel.
#include "ops/noise.h"

#include "core/rng.h"
#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

void noise_augment_(const Tensor& z, const Tensor& ids, const NoiseAugKey& key,
                    const Tensor& sigma) {
  const int64_t B = z.dim(0), per = z.numel() / B;
  const int64_t* id = ids.data<int64_t>();
  float* sg = sigma.defined() ? sigma.data<float>() : nullptr;
  float_dispatch(z.dtype(), "noise_augment_", [&](auto tag) {
    using T = decltype(tag);
    T* zp = ptr<T>(z);
    parallel_blocks(B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const rng::Key k{key.seed, rng::Purpose::NoiseAug, key.step, static_cast<uint64_t>(id[b])};
        const float s = static_cast<float>(key.tau) * rng::uniform_at(k, 0);
        if (sg) sg[b] = s;
        T* row = zp + b * per;
        for (int64_t i = 0; i < per; ++i)
          row[i] += static_cast<T>(s * rng::normal_at(k, 4 + static_cast<uint64_t>(i)));
      }
    });
  });
}

}  // namespace rae::ops::cpu
