#include "nn/arena.h"

#include "ops/profile.h"

namespace rae::nn {

Tensor Arena::empty(const Shape& shape, DType dtype) {
  size_t bytes = (static_cast<size_t>(shape.numel()) * dtype_size(dtype) + 63) & ~size_t(63);
  if (bytes == 0) bytes = 64;
  while (true) {
    if (chunk_ == chunks_.size()) {
      chunks_.push_back(allocate_storage(std::max(bytes, chunk_bytes_), device_));
      used_ = 0;
    }
    auto& c = chunks_[chunk_];
    if (used_ + bytes <= c->bytes) {
      void* p = static_cast<char*>(c->data) + used_;
      used_ += bytes;
      return Tensor::from_blob(p, shape, dtype, device_, c);
    }
    ++chunk_;
    used_ = 0;
  }
}

Tensor Arena::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  ops::profile::Scope timed("zero_fill", t);  // a row of step_bench_cuda --profile
  t.zero_();
  return t;
}

size_t Arena::capacity_bytes() const {
  size_t s = 0;
  for (auto& c : chunks_) s += c->bytes;
  return s;
}

}  // namespace rae::nn
