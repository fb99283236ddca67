// Deterministic pseudo-random weights from a formula that numpy reproduces bit for bit, so a
// PyTorch golden can build the same network without committing its weights
// (tests/reference/synthetic_weights.py is the numpy side):
//   key = FNV-1a 64 of the parameter name; z_i = splitmix64 finalizer of key + (i + 1) * golden
//   u_i = (z_i >> 40) / 2^24 in [0, 1); value = float32((2 u_i + offset) * a), one double
//   multiply then one rounding (offset -1: symmetric in [-a, a); +1: positive in [a, 3a)).
// i is the flat index in PyTorch's layout of the parameter. Users: the FID Inception's parity
// golden (inception_synthetic.cpp), LPIPS/VGG16 and the DINO discriminator in random mode.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace rae::models {

uint64_t fnv1a64(const std::string& s);
// The splitmix64 finalizer of key + (i + 1) * 0x9E3779B97F4A7C15.
uint64_t splitmix(uint64_t key, uint64_t i);
// A CPU F32 tensor of `shape` (PyTorch's layout) filled by the formula for `name`.
Tensor synthetic_tensor(const std::string& name, const Shape& shape, double offset, double a);

}  // namespace rae::models
