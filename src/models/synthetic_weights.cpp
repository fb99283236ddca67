#include "models/synthetic_weights.h"

namespace rae::models {

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

Tensor synthetic_tensor(const std::string& name, const Shape& shape, double offset, double a) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  const uint64_t key = fnv1a64(name);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double u =
        static_cast<double>(splitmix(key, static_cast<uint64_t>(i)) >> 40) / 16777216.0;
    p[i] = static_cast<float>((2.0 * u + offset) * a);
  }
  return t;
}

}  // namespace rae::models
