// Reference batches in the ADM suite's layout (VIRTUAL_imagenet256_labeled.npz and friends):
//   arr_0    (N, H, W, 3) uint8   images; their pool features give precision/recall's reference
//                                 manifold (ADM recomputes them, so do we);
//   mu       (2048,)              mean of the pool features over the reference set (float64),
//   sigma    (2048, 2048)         their covariance (N - 1),
//   mu_s, sigma_s (2023,), (2023, 2023)   the same for the spatial (sFID) features.
// The statistics may come from a larger set than arr_0 (ADM: all of ImageNet train; arr_0 is a
// 10,000-image subset). A file without `mu` is used as a plain source: statistics and manifold
// both from its images (or features). Our extension: `pool` (N, 2048) float instead of `arr_0`,
// precomputed features for the manifold (written by `rae eval stats` from a features file).
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "eval/feature_source.h"
#include "eval/feature_stats.h"

namespace rae::eval {

struct ReferenceStats {
  GaussianStats pool;     // mu, sigma
  GaussianStats spatial;  // mu_s, sigma_s
};

struct Reference {
  std::string path;
  std::optional<ReferenceStats> stats;     // when the file has mu/sigma/mu_s/sigma_s
  std::unique_ptr<FeatureSource> vectors;  // arr_0 images or pool features
};

// Opens and checks a reference file; errors name the file, the key and the expected shape.
Reference open_reference(const std::string& path);

// Reads mu/sigma (or mu_s/sigma_s) as float64; checks mu (D,) and sigma (D, D).
GaussianStats read_gaussian(const npz::Reader& r, const std::string& mu_key,
                            const std::string& sigma_key, const std::string& role);

// Adds mu, sigma, mu_s, sigma_s (float64) to an archive being written.
void add_reference_stats(npz::Writer& w, const ReferenceStats& s);

}  // namespace rae::eval
