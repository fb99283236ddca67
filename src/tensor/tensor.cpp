#include "tensor/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#ifdef RAE_WITH_CUDA
#include "tensor/cuda_memory.h"
#endif

namespace rae {

namespace {

[[noreturn, maybe_unused]] void no_cuda(const char* what) {
  RAE_THROW(what, ": this binary was built without CUDA");
}

template <typename Dst>
void convert_block(Dst* d, DType st, const void* s, int64_t n) {
  auto conv = [&](auto get) {
    for (int64_t i = 0; i < n; ++i) {
      double v = get(i);
      if constexpr (std::is_same_v<Dst, bf16_t>)
        d[i].bits = f32_to_bf16_bits(static_cast<float>(v));
      else if constexpr (std::is_same_v<Dst, f16_t>)
        d[i].bits = f32_to_f16_bits(static_cast<float>(v));
      else
        d[i] = static_cast<Dst>(v);
    }
  };
  switch (st) {
    case DType::F32:
      conv([&](int64_t i) { return (double)static_cast<const float*>(s)[i]; });
      break;
    case DType::F64:
      conv([&](int64_t i) { return static_cast<const double*>(s)[i]; });
      break;
    case DType::BF16:
      conv([&](int64_t i) { return (double)bf16_bits_to_f32(static_cast<const uint16_t*>(s)[i]); });
      break;
    case DType::F16:
      conv([&](int64_t i) { return (double)f16_bits_to_f32(static_cast<const uint16_t*>(s)[i]); });
      break;
    case DType::I32:
      conv([&](int64_t i) { return (double)static_cast<const int32_t*>(s)[i]; });
      break;
    case DType::I64:
      conv([&](int64_t i) { return (double)static_cast<const int64_t*>(s)[i]; });
      break;
    case DType::U8:
      conv([&](int64_t i) { return (double)static_cast<const uint8_t*>(s)[i]; });
      break;
  }
}

void cpu_convert(void* dst, DType dt, const void* src, DType st, int64_t n) {
  switch (dt) {
    case DType::F32:
      convert_block(static_cast<float*>(dst), st, src, n);
      break;
    case DType::F64:
      convert_block(static_cast<double*>(dst), st, src, n);
      break;
    case DType::BF16:
      convert_block(static_cast<bf16_t*>(dst), st, src, n);
      break;
    case DType::F16:
      convert_block(static_cast<f16_t*>(dst), st, src, n);
      break;
    case DType::I32:
      convert_block(static_cast<int32_t*>(dst), st, src, n);
      break;
    case DType::I64:
      convert_block(static_cast<int64_t*>(dst), st, src, n);
      break;
    case DType::U8:
      convert_block(static_cast<uint8_t*>(dst), st, src, n);
      break;
  }
}

}  // namespace

std::shared_ptr<Storage> allocate_storage(size_t bytes, Device device) {
  auto s = std::make_shared<Storage>();
  s->bytes = bytes;
  s->device = device;
  size_t padded = (bytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  if (device.is_cpu()) {
    s->data = std::aligned_alloc(64, padded);
    RAE_CHECK(s->data, "out of host memory allocating ", bytes, " bytes");
    s->deleter = [](void* p) { std::free(p); };
  } else {
#ifdef RAE_WITH_CUDA
    int dev = device.index;
    s->data = cuda_memory::alloc(padded, dev);
    s->deleter = [dev](void* p) { cuda_memory::free(p, dev); };
#else
    no_cuda("allocating a CUDA tensor");
#endif
  }
  return s;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st = shape;
  int64_t acc = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) RAE_CHECK(d >= 0, "negative dimension in shape ", shape.str());
  Tensor t;
  t.storage_ = allocate_storage(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device device,
                         std::shared_ptr<void> keep_alive) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->data = data;
  t.storage_->bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  t.storage_->device = device;
  t.storage_->deleter = [keep_alive](void*) mutable { keep_alive.reset(); };
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int i = shape_.size() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

Tensor Tensor::view(const Shape& shape) const {
  RAE_CHECK(defined(), "view of an undefined tensor");
  RAE_CHECK(is_contiguous(), "view ", shape.str(), " of non-contiguous tensor ", str(),
            " would need a copy: call clone() first");
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      RAE_CHECK(infer < 0, "view: more than one -1 in ", shape.str());
      infer = i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    RAE_CHECK(known > 0 && numel() % known == 0, "view: cannot infer -1 in ", shape.str(), " for ",
              str());
    s[infer] = numel() / known;
  }
  RAE_CHECK(s.numel() == numel(), "view ", s.str(), " does not match ", str());
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  if (dim < 0) dim += ndim();
  RAE_CHECK(dim >= 0 && dim < ndim(), "narrow: bad dim ", dim, " for ", str());
  RAE_CHECK(start >= 0 && length >= 0 && start + length <= shape_[dim], "narrow(", dim, ", ", start,
            ", ", length, ") out of range for ", str());
  Tensor t = *this;
  t.offset_ += start * strides_[dim];
  t.shape_[dim] = length;
  return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
  if (dim < 0) dim += ndim();
  Tensor t = narrow(dim, index, 1);
  Shape s, st;
  for (int i = 0; i < ndim(); ++i)
    if (i != dim) {
      s.push_back(t.shape_[i]);
      st.push_back(t.strides_[i]);
    }
  t.shape_ = s;
  t.strides_ = st;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device d) const {
  if (d == device() && is_contiguous()) return *this;
  Tensor t = empty(shape_, dtype_, d);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::cast(DType dt) const {
  RAE_CHECK(is_contiguous(), "cast of non-contiguous tensor ", str());
  Tensor t = empty(shape_, dt, device());
  if (device().is_cpu()) {
    cpu_convert(t.raw(), dt, raw(), dtype_, numel());
  } else {
#ifdef RAE_WITH_CUDA
    cuda_memory::cast(t.raw(), dt, raw(), dtype_, numel());
#else
    no_cuda("cast");
#endif
  }
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  RAE_CHECK(src.shape() == shape_, "copy_from: shape ", src.shape().str(), " into ", shape_.str());
  RAE_CHECK(src.dtype() == dtype_, "copy_from: dtype ", dtype_name(src.dtype()), " into ",
            dtype_name(dtype_), " (use cast)");
  if (src.is_contiguous() && is_contiguous()) {
    if (device().is_cpu() && src.device().is_cpu()) {
      std::memcpy(raw(), src.raw(), nbytes());
      return;
    }
#ifdef RAE_WITH_CUDA
    using K = cuda_memory::CopyKind;
    K kind = src.device().is_cpu() ? K::HostToDevice
                                   : (device().is_cpu() ? K::DeviceToHost : K::DeviceToDevice);
    cuda_memory::copy(raw(), src.raw(), nbytes(), kind);
    return;
#else
    no_cuda("copy_from");
#endif
  }
  if (device().is_cuda() || src.device().is_cuda()) {
#ifdef RAE_WITH_CUDA
    // Strided copies touching the GPU: a kernel on the device, staging through a contiguous
    // buffer when the other side is the host.
    if (device().is_cuda() && src.device().is_cuda()) {
      cuda_memory::strided_copy(raw(), strides_.begin(), src.raw(), src.strides().begin(),
                                shape_.begin(), ndim(), dtype_size(dtype_));
    } else if (device().is_cuda()) {                          // host -> device
      Tensor host = src.is_contiguous() ? src : src.clone();  // gather on the CPU
      if (is_contiguous()) {
        copy_from(host);  // plain upload
      } else {
        copy_from(host.to(device()));  // upload, then scatter on the device
      }
    } else {  // device -> host
      Tensor gathered = src;
      if (!src.is_contiguous()) {
        gathered = Tensor::empty(shape_, dtype_, src.device());
        gathered.copy_from(src);  // gather on the device
      }
      copy_from(gathered.to(Device::cpu()));
    }
    return;
#else
    no_cuda("copy_from");
#endif
  }
  // Strided copy on the CPU: walk the index space.
  size_t es = dtype_size(dtype_);
  int64_t n = numel();
  int nd = ndim();
  int64_t idx[kMaxDims] = {};
  const char* sb = static_cast<const char*>(src.raw());
  char* db = static_cast<char*>(raw());
  for (int64_t k = 0; k < n; ++k) {
    int64_t so = 0, dof = 0;
    for (int i = 0; i < nd; ++i) {
      so += idx[i] * src.strides_[i];
      dof += idx[i] * strides_[i];
    }
    std::memcpy(db + dof * es, sb + so * es, es);
    for (int i = nd - 1; i >= 0; --i) {
      if (++idx[i] < shape_[i]) break;
      idx[i] = 0;
    }
  }
}

void Tensor::fill_(double v) {
  RAE_CHECK(is_contiguous(), "fill_ of non-contiguous tensor ", str());
  if (device().is_cuda()) {
#ifdef RAE_WITH_CUDA
    cuda_memory::fill(raw(), dtype_, numel(), v);
    return;
#else
    no_cuda("fill_");
#endif
  }
  double one = v;
  size_t es = dtype_size(dtype_);
  char buf[8];
  cpu_convert(buf, dtype_, &one, DType::F64, 1);
  char* d = static_cast<char*>(raw());
  int64_t n = numel();
  if (v == 0.0) {
    std::memset(d, 0, nbytes());
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(d + i * es, buf, es);
}

void Tensor::zero_() {
  if (device().is_cuda() && is_contiguous()) {
#ifdef RAE_WITH_CUDA
    cuda_memory::memset0(raw(), nbytes());
    return;
#endif
  }
  fill_(0.0);
}

double Tensor::item(int64_t i) const {
  RAE_CHECK(device().is_cpu(), "item() of a CUDA tensor: copy it to the CPU first");
  RAE_CHECK(is_contiguous(), "item() of a non-contiguous tensor");
  RAE_CHECK(i >= 0 && i < numel(), "item(", i, ") out of range for ", str());
  double out = 0.0;
  cpu_convert(&out, DType::F64, static_cast<const char*>(raw()) + i * dtype_size(dtype_), dtype_,
              1);
  return out;
}

std::string Tensor::str() const {
  return std::string(dtype_name(dtype_)) + shape_.str() + " on " + device().str();
}

void check_shape(const Tensor& t, const Shape& expect, const char* op, const char* arg) {
  RAE_CHECK(t.defined(), op, ": argument '", arg, "' is undefined");
  RAE_CHECK(t.shape() == expect, op, ": argument '", arg, "' has shape ", t.shape().str(),
            ", expected ", expect.str());
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  RAE_CHECK(a.device() == b.device(), op, ": tensors on ", a.device().str(), " and ",
            b.device().str());
}

}  // namespace rae
