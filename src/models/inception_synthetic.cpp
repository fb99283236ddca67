// Deterministic pseudo-random Inception weights (InceptionV3::synthetic_tensors). The formula,
// mirrored in numpy by tests/reference/make_inception_golden.py (which documents it):
//   key = FNV-1a 64 of the parameter name; z_i = splitmix64 finalizer of key + (i + 1) * golden
//   u_i = (z_i >> 40) / 2^24; value = float32((2 u_i + offset) * a) with one double multiply
//   (offset -1: symmetric, +1: positive) and a per kind (He-uniform convolutions, batch-norm
//   scales in [0.5, 1.5), small shifts and means).
// Every step is exact or a single IEEE rounding, so both languages produce identical bits.
#include <cmath>
#include <utility>

#include "models/inception.h"
#include "models/synthetic_weights.h"

namespace rae::models {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  return s.ends_with(suffix);
}

// (offset, a) of value = (2u + offset) * a for parameter `name` of PyTorch shape `shape`.
std::pair<double, double> kind_of(const std::string& name, const Shape& shape) {
  if (ends_with(name, ".conv.weight"))
    return {-1.0, std::sqrt(6.0 / static_cast<double>(shape[1] * shape[2] * shape[3]))};
  if (ends_with(name, ".bn.weight") || ends_with(name, ".bn.running_var")) return {1.0, 0.5};
  if (ends_with(name, ".bn.bias") || ends_with(name, ".bn.running_mean") || name == "fc.bias")
    return {-1.0, 0.1};
  if (name == "fc.weight") return {-1.0, std::sqrt(6.0 / 2048.0)};
  RAE_THROW("InceptionV3::synthetic_tensors: no formula for ", name);
}

}  // namespace

std::map<std::string, Tensor> InceptionV3::synthetic_tensors() {
  std::map<std::string, Tensor> out;
  for (const auto& [name, shape] : parameter_shapes()) {
    const auto [offset, a] = kind_of(name, shape);
    out.emplace(name, synthetic_tensor(name, shape, offset, a));
  }
  return out;
}

}  // namespace rae::models
