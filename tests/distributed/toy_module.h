// A toy nn::Module for the sharding core's tests: a root group, `blocks` block groups of odd
// sizes (no size divides evenly by the world size) and a second root group, trained with SGD on
// the loss 0.5 |p - d|^2 (the data d differs per rank and micro-batch), so that the exact result
// of any schedule is known. The test drives the hooks itself (forward over the blocks, backward
// in reverse), as a model would.
#pragma once
#include <string>
#include <vector>

#include "distributed/sharded_params.h"
#include "nn/module.h"
#include "support/util.h"

namespace rae::test {

class ToyModule : public nn::Module {
 public:
  // `scale` widens every block's first parameter (memory tests need blocks larger than padding).
  explicit ToyModule(int blocks, int scale = 1) {
    ps_.begin_group("embed");
    ps_.add("embed.w", {5, 3});
    for (int b = 0; b < blocks; ++b) {
      const std::string p = "blocks." + std::to_string(b);
      blocks_.push_back(ps_.begin_group(p));
      ps_.add(p + ".w", {3, (5 + 2 * b) * scale});
      ps_.add(p + ".b", {7});
      ps_.add(p + ".g", {1, 1, 11 + b});
    }
    ps_.begin_group("final");
    ps_.add("final.w", {2, 9});
    ps_.add_buffer("final.table", {4});
    ps_.allocate();
  }
  std::string type() const override { return "Toy"; }
  nlohmann::json config() const override { return {{"blocks", blocks_.size()}}; }
  void init(uint64_t seed) override {
    for (size_t i = 0; i < ps_.params().size(); ++i)
      Tensor(ps_.value(static_cast<int>(i))).copy_from(randn(ps_.params()[i].shape, seed + i));
  }
  void to(Device device) override { ps_.to_device(device); }
  std::vector<int> block_groups() const override { return blocks_; }

 private:
  std::vector<int> blocks_;
};

// Rank r's data for micro-batch m of parameter `id`.
inline Tensor toy_data(int r, int m, int id, const Shape& shape) {
  return randn(shape, 1000 * (id + 1) + 17 * r + m);
}

struct ToyResult {
  std::vector<Tensor> params;  // final values per parameter id (CPU F32)
  double max_diff = 0;         // largest |value - reference| seen at any use
  int64_t peak_bytes = 0, end_bytes = 0;
};

// Trains the toy model with SGD (lr 0.3) under `opts` over `world` (null: one process), checking
// every parameter against the exact single-process reference each time the model uses it.
ToyResult train_toy(distributed::Communicator* world, const distributed::ShardingOptions& opts,
                    Device device, int num_micro, int steps, int blocks = 4, int scale = 1);

}  // namespace rae::test
