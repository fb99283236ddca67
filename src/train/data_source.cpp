#include "train/data_source.h"

#include "core/error.h"
#include "core/rng.h"

namespace rae::train {

SyntheticSource::SyntheticSource(int64_t samples, int64_t grid, int64_t channels,
                                 int64_t classes, uint64_t seed, double noise_scale)
    : n_(samples), grid_(grid), c_(channels), k_(classes), seed_(seed), noise_(noise_scale) {}

void SyntheticSource::read(const std::vector<int64_t>& ids, const Tensor& latents,
                           const Tensor& labels) {
  const int64_t D = grid_ * grid_ * c_;
  float* out = latents.data<float>();
  for (size_t b = 0; b < ids.size(); ++b) {
    RAE_CHECK(ids[b] >= 0 && ids[b] < n_, "synthetic source: sample ", ids[b], " out of range");
    const int64_t k = ids[b] % k_;
    labels.data<int32_t>()[b] = static_cast<int32_t>(k);
    rng::Key km{seed_, rng::Purpose::Test, 1, static_cast<uint64_t>(k)};
    rng::Key kn{seed_, rng::Purpose::Test, 2, static_cast<uint64_t>(ids[b])};
    for (int64_t i = 0; i < D; ++i)
      out[b * D + i] = rng::normal_at(km, i) + static_cast<float>(noise_) * rng::normal_at(kn, i);
  }
}

SampleOrder::SampleOrder(int64_t n, int64_t global_batch, uint64_t seed) : n_(n), seed_(seed) {
  steps_per_epoch_ = n / global_batch;
  RAE_CHECK(steps_per_epoch_ >= 1, "dataset of ", n, " samples is smaller than the global batch ",
            global_batch);
  epoch_len_ = steps_per_epoch_ * global_batch;
}

const std::vector<int64_t>& SampleOrder::perm(int64_t epoch) {
  if (epoch != cached_epoch_) {
    perm_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) perm_[i] = i;
    rng::Key k{seed_, rng::Purpose::Shuffle, static_cast<uint64_t>(epoch), 0};
    for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates
      int64_t j = static_cast<int64_t>(rng::uniform_at(k, static_cast<uint64_t>(i)) * (i + 1));
      if (j > i) j = i;
      std::swap(perm_[i], perm_[j]);
    }
    cached_epoch_ = epoch;
  }
  return perm_;
}

std::vector<int64_t> SampleOrder::ids(int64_t pos, int64_t count) {
  std::vector<int64_t> out(count);
  for (int64_t i = 0; i < count; ++i) {
    int64_t q = pos + i;
    out[i] = perm(q / epoch_len_)[q % epoch_len_];
  }
  return out;
}

}  // namespace rae::train
