// Deterministic pseudo-random Inception weights (InceptionV3::synthetic_tensors). The formula,
// mirrored in numpy by tests/reference/make_inception_golden.py (which documents it):
//   key = FNV-1a 64 of the parameter name; z_i = splitmix64 finalizer of key + (i + 1) * golden
//   u_i = (z_i >> 40) / 2^24; value = float32((2 u_i + offset) * a) with one double multiply
//   (offset -1: symmetric, +1: positive) and a per kind (He-uniform convolutions, batch-norm
//   scales in [0.5, 1.5), small shifts and means).
// Every step is exact or a single IEEE rounding, so both languages produce identical bits.
#include <cmath>

#include "models/inception.h"

namespace rae::models {

namespace {

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

uint64_t splitmix(uint64_t key, uint64_t i) {
  uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

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
    Tensor t = Tensor::empty(shape, DType::F32);
    float* p = t.data<float>();
    const uint64_t key = fnv1a64(name);
    const auto [offset, a] = kind_of(name, shape);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double u =
          static_cast<double>(splitmix(key, static_cast<uint64_t>(i)) >> 40) / 16777216.0;
      p[i] = static_cast<float>((2.0 * u + offset) * a);
    }
    out.emplace(name, t);
  }
  return out;
}

}  // namespace rae::models
