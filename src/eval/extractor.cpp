#include "eval/extractor.h"

#include "core/error.h"

namespace rae::eval {

std::unique_ptr<FeatureExtractor> make_inception_extractor(const std::string& weights,
                                                           Device device) {
  // TODO(lead, when the visionops branch is merged): wrap models::InceptionV3 here, see
  // docs/evaluation.md "Wiring the network".
  RAE_THROW(
      "this build has no InceptionV3 network yet (src/models/inception.h); image inputs "
      "need it. Precomputed feature files (pool/spatial/logits) work without it. Weights: '",
      weights, "', device ", device.str());
}

}  // namespace rae::eval
