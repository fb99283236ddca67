// Per-step activation arena: tensors carved from a few large chunks, rewound each step.
// The sequence of allocations is the same every step, so after the first step the chunks are
// reused without touching the allocator (llm.c style, no per-op malloc).
#pragma once
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace rae::nn {

class Arena {
 public:
  explicit Arena(Device device = Device::cpu(), size_t chunk_bytes = size_t(64) << 20)
      : device_(device), chunk_bytes_(chunk_bytes) {}
  Tensor empty(const Shape& shape, DType dtype = DType::F32);
  Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  void reset() { chunk_ = 0, used_ = 0; }  // tensors handed out earlier must not be used after
  size_t capacity_bytes() const;
  Device device() const { return device_; }

 private:
  Device device_;
  size_t chunk_bytes_;
  std::vector<std::shared_ptr<Storage>> chunks_;
  size_t chunk_ = 0, used_ = 0;
};

}  // namespace rae::nn
