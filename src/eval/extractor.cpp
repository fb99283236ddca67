#include "eval/extractor.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/error.h"
#include "models/inception.h"

namespace rae::eval {

namespace {

class InceptionExtractor : public FeatureExtractor {
 public:
  InceptionExtractor(const std::string& weights, Device device)
      : net_(weights == kSyntheticWeights
                 ? models::InceptionV3::from_tensors(models::InceptionV3::synthetic_tensors(),
                                                     "synthetic weights")
                 : models::InceptionV3::load(weights)) {
    net_.to(device);
    nlohmann::json id = {{"name", "inception-v3-compat"}, {"device", device.str()}};
    if (weights == kSyntheticWeights) {
      id["weights"] = "synthetic (pseudo-random; scores are meaningless)";
    } else {
      uint64_t bytes = 0;
      id["weights"] = std::filesystem::absolute(weights).string();
      id["xxh64"] = file_checksum(weights, &bytes);
      id["bytes"] = bytes;
    }
    identity_ = id.dump();
  }
  BatchFeatures extract(const Tensor& images) override {
    models::InceptionFeatures f = net_.forward(images);
    return {f.pool.to(Device::cpu()), f.spatial.to(Device::cpu()), f.logits.to(Device::cpu())};
  }
  std::string identity_json() const override { return identity_; }

 private:
  models::InceptionV3 net_;
  std::string identity_;
};

}  // namespace

std::unique_ptr<FeatureExtractor> make_inception_extractor(const std::string& weights,
                                                           Device device) {
  RAE_CHECK(weights == kSyntheticWeights || std::filesystem::exists(weights), "Inception weights '",
            weights,
            "' do not exist (convert torch-fidelity's .pth with "
            "tools/convert_inception_weights.py)");
  return std::make_unique<InceptionExtractor>(weights, device);
}

}  // namespace rae::eval
