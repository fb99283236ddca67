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
  // `activation_dtype` is the dtype of tensors allocated without one (BF16 for mixed-precision
  // training on CUDA); statistics (norm rstd, attention lse) ask for F32 explicitly.
  explicit Arena(Device device = Device::cpu(), size_t chunk_bytes = size_t(64) << 20,
                 DType activation_dtype = DType::F32)
      : device_(device), chunk_bytes_(chunk_bytes), act_dtype_(activation_dtype) {}
  Tensor empty(const Shape& shape) { return empty(shape, act_dtype_); }
  Tensor zeros(const Shape& shape) { return zeros(shape, act_dtype_); }
  Tensor empty(const Shape& shape, DType dtype);
  Tensor zeros(const Shape& shape, DType dtype);
  DType activation_dtype() const { return act_dtype_; }
  void reset() { chunk_ = 0, used_ = 0; }  // tensors handed out earlier must not be used after
  // A position in the arena: rewind(mark()) hands the memory allocated since back (tensors taken
  // after the mark must not be used after). Inference rewinds each block's scratch this way, so
  // a forward without backward holds one block's temporaries at a time.
  struct Mark {
    size_t chunk = 0, used = 0;
  };
  Mark mark() const { return {chunk_, used_}; }
  void rewind(const Mark& m) { chunk_ = m.chunk, used_ = m.used; }
  size_t capacity_bytes() const;
  Device device() const { return device_; }

 private:
  Device device_;
  size_t chunk_bytes_;
  DType act_dtype_;
  std::vector<std::shared_ptr<Storage>> chunks_;
  size_t chunk_ = 0, used_ = 0;
};

}  // namespace rae::nn
