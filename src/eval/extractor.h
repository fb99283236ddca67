// The feature extractor behind every image path of the evaluation: a batch of 8-bit RGB images
// in, per-image features out. The real one is InceptionV3 (`inception-v3-compat`, the network of
// the ADM suite and torch-fidelity) from a user-supplied safetensors file; the job only sees this
// interface, so the statistics and metrics run (and are tested) on precomputed features too.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/device.h"
#include "tensor/tensor.h"

namespace rae::eval {

// Features of one batch, CPU F32, rows in the batch's order.
struct BatchFeatures {
  Tensor pool;     // (n, 2048): pool_3, the FID features
  Tensor spatial;  // (n, 2023): mixed_6/conv channels 0..6 over the 17 x 17 grid, the sFID features
  Tensor logits;   // (n, 1008): pool @ W without the classifier bias, the IS logits
};

// The widths the ADM reference batches and the Inception network use.
constexpr int64_t kPoolDim = 2048, kSpatialDim = 2023, kLogitsDim = 1008;

// Feature widths of a source (0: the source does not have that feature).
struct FeatureWidths {
  int64_t pool = kPoolDim, spatial = kSpatialDim, logits = kLogitsDim;
};

class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  // images: (n, H, W, 3) U8 CPU, any H and W (the network resizes to 299 x 299).
  virtual BatchFeatures extract(const Tensor& images) = 0;
  virtual FeatureWidths widths() const { return {}; }
  // What produced the features, for metrics.json ({"name", "weights", "xxh64"}, as JSON text).
  virtual std::string identity_json() const = 0;
};

// Creates the extractor when a source needs one (never for precomputed features).
using ExtractorFactory = std::function<std::unique_ptr<FeatureExtractor>()>;

// InceptionV3 from `weights` (safetensors, converted from torch-fidelity's / pytorch-fid's .pth by
// tools/convert_inception_weights.py) on `device`. `weights` = "synthetic": the network with
// InceptionV3::synthetic_tensors() (pseudo-random; for benchmarks and tests, e.g. on a machine
// that cannot hold the 95 MB weights file; its scores mean nothing).
constexpr const char* kSyntheticWeights = "synthetic";
std::unique_ptr<FeatureExtractor> make_inception_extractor(const std::string& weights,
                                                           Device device);

}  // namespace rae::eval
