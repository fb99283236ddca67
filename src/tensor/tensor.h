// Tensor: a typed, strided view of a reference-counted buffer on one device.
// No hidden copies: view/reshape/narrow never copy and fail when a copy would be needed;
// copies happen only through clone(), to(), copy_from() and cast().
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"
#include "core/dtype.h"
#include "tensor/shape.h"

namespace rae {

// A buffer of bytes on a device, freed by its deleter.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  std::function<void(void*)> deleter;
  ~Storage() {
    if (deleter && data) deleter(data);
  }
};

// Allocates `bytes` on `device` (64-byte aligned on the CPU; the caching allocator on CUDA).
std::shared_ptr<Storage> allocate_storage(size_t bytes, Device device);

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                     Device device = Device::cpu());
  // Wraps memory owned elsewhere (for example a memory-mapped file); `keep_alive` holds it.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device,
                          std::shared_ptr<void> keep_alive);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int ndim() const { return shape_.size(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::cpu(); }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;

  // The first element's address on the tensor's device (kernels and copies take it).
  void* raw() const { return static_cast<char*>(storage_->data) + offset_ * dtype_size(dtype_); }
  // Typed HOST access: refuses device tensors (host code must not dereference device memory;
  // copy with .to(Device::cpu()) first) and a mismatched element type.
  template <typename T>
  T* data() const {
    RAE_CHECK(defined(), "Tensor::data<", dtype_name(dtype_of<T>::value),
              ">() on an undefined tensor");
    RAE_CHECK(!storage_->device.is_cuda(), "Tensor::data<", dtype_name(dtype_of<T>::value),
              ">() on ", str(), ": host code cannot read device memory (copy it with .to(cpu))");
    RAE_CHECK(dtype_of<T>::value == dtype_, "tensor dtype is ", dtype_name(dtype_),
              ", accessed as ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw());
  }

  // Views (never copy).
  Tensor view(const Shape& shape) const;  // contiguous only; one dim may be -1
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  Tensor select(int dim, int64_t index) const;  // drops `dim`
  Tensor operator[](int64_t i) const { return select(0, i); }
  Tensor flatten() const { return view({numel()}); }

  // Copies.
  Tensor clone() const;               // same device, contiguous
  Tensor to(Device device) const;     // contiguous copy on `device` (or *this if already there)
  Tensor cast(DType dtype) const;     // contiguous copy with converted elements (CPU and CUDA)
  void copy_from(const Tensor& src);  // same shape and dtype, any devices
  void fill_(double value);
  void zero_();

  // Reads element i (flat, contiguous order) as double. CPU tensors only; for tests and tools.
  double item(int64_t i = 0) const;

  std::string str() const;  // "f32(2, 3) on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // elements
  Shape shape_, strides_;
  DType dtype_ = DType::F32;
};

Shape contiguous_strides(const Shape& shape);

// Checks used at op entry; messages name the op and the argument.
void check_shape(const Tensor& t, const Shape& expect, const char* op, const char* arg);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace rae
