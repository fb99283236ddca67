// Class agreement of class-conditional samples: the share of samples whose nearest class
// centroid, in a frozen encoder's feature space, is the class they were sampled for. A cheap,
// weights-free check that a model follows its labels (the demo reports it beside chance, 1/K);
// FID needs Inception weights, this needs only the encoder the latents came from.
//
// Features are L2-normalised rows; a class centroid is the normalised mean of its reference
// rows; "nearest" is the largest cosine (ties: the smaller class index). The same rule scores
// the reference rows themselves (`reference_agreement`), the ceiling the samples are read
// against.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "tensor/tensor.h"

namespace rae::eval {

struct ClassAgreement {
  int64_t classes = 0;
  int64_t samples = 0;
  int64_t agreeing = 0;
  double agreement = 0;            // agreeing / samples
  double chance = 0;               // 1 / classes
  double reference_agreement = 0;  // the reference rows scored the same way
  std::vector<int64_t> per_class_samples, per_class_agreeing;  // (K)
  std::vector<std::vector<int64_t>> confusion;                 // [label][nearest centroid], (K, K)
  nlohmann::json to_json() const;
};

// Unit-length class centroids (K, D) of `features` (N, D) F32 with labels in [0, K).
Tensor class_centroids(const Tensor& features, const std::vector<int32_t>& labels, int64_t classes);

// The nearest centroid (largest cosine) of each row of `features` (N, D): (N).
std::vector<int32_t> nearest_centroid(const Tensor& features, const Tensor& centroids);

// Scores `samples` (M, D) with `sample_labels` against centroids of `reference` (N, D).
ClassAgreement class_agreement(const Tensor& reference, const std::vector<int32_t>& ref_labels,
                               const Tensor& samples, const std::vector<int32_t>& sample_labels,
                               int64_t classes);

}  // namespace rae::eval
