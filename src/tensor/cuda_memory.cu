// Caching device allocator: blocks are rounded to size classes and kept on free lists, so a
// training step after the first one makes no cudaMalloc calls.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "tensor/cuda_memory.h"

#define RAE_CUDA_OK(expr)                                                                   \
  do {                                                                                      \
    cudaError_t e_ = (expr);                                                                \
    RAE_CHECK(e_ == cudaSuccess, "CUDA error ", cudaGetErrorString(e_), " in " #expr);      \
  } while (0)

namespace rae::cuda_memory {
namespace {

size_t round_size(size_t b) {
  if (b <= (1u << 20)) return (b + 511) / 512 * 512;        // small: 512-byte classes
  return (b + (2u << 20) - 1) / (2u << 20) * (2u << 20);    // large: 2 MiB classes
}

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;          // size -> ptr
  std::unordered_map<void*, size_t> sizes;
  Stats st;
};
Cache& cache() {
  static Cache* c = new Cache();  // leaked on purpose: freed tensors may outlive statics
  return *c;
}

thread_local cudaStream_t t_stream = nullptr;

}  // namespace

void* stream() { return t_stream; }
void set_stream(void* s) { t_stream = static_cast<cudaStream_t>(s); }

void* alloc(size_t bytes, int device) {
  Cache& c = cache();
  size_t sz = round_size(bytes);
  std::lock_guard<std::mutex> lock(c.mu);
  RAE_CUDA_OK(cudaSetDevice(device));
  auto it = c.free_blocks.lower_bound(sz);
  void* p = nullptr;
  if (it != c.free_blocks.end() && it->first <= sz * 2) {
    p = it->second;
    sz = it->first;
    c.free_blocks.erase(it);
    c.st.cached -= sz;
  } else {
    cudaError_t e = cudaMalloc(&p, sz);
    if (e != cudaSuccess) {  // release the cache and retry once
      (void)cudaGetLastError();
      for (auto& kv : c.free_blocks) cudaFree(kv.second);
      c.free_blocks.clear();
      c.st.cached = 0;
      e = cudaMalloc(&p, sz);
      RAE_CHECK(e == cudaSuccess, "CUDA out of memory allocating ", bytes, " bytes (in use ",
                c.st.in_use, ")");
    }
    c.sizes[p] = sz;
  }
  c.st.in_use += sz;
  if (c.st.in_use > c.st.peak_in_use) c.st.peak_in_use = c.st.in_use;
  return p;
}

void free(void* p, int) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t sz = c.sizes.at(p);
  c.st.in_use -= sz;
  c.st.cached += sz;
  c.free_blocks.emplace(sz, p);
}

void copy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                      : cudaMemcpyDeviceToDevice;
  RAE_CUDA_OK(cudaMemcpy(dst, src, bytes, k));
}

void memset0(void* dst, size_t bytes) { RAE_CUDA_OK(cudaMemset(dst, 0, bytes)); }

namespace {
template <typename T>
__device__ float load_as_float(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const T*>(p)[i]);
}
__device__ float load_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F64: return static_cast<float>(static_cast<const double*>(p)[i]);
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
    case DType::I64: return static_cast<float>(static_cast<const int64_t*>(p)[i]);
    case DType::U8: return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
  }
  return 0.f;
}
__device__ void store_any(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(static_cast<float>(v)); break;
    case DType::F16: static_cast<__half*>(p)[i] = __float2half(static_cast<float>(v)); break;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
  }
}
__global__ void cast_kernel(void* dst, DType dt, const void* src, DType st, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store_any(dst, dt, i, st == DType::F64 ? static_cast<const double*>(src)[i] : load_any(src, st, i));
}
__global__ void fill_kernel(void* dst, DType t, int64_t n, double v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store_any(dst, t, i, v);
}
int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535)); }
}  // namespace

void cast(void* dst, DType dt, const void* src, DType st, int64_t n) {
  if (n == 0) return;
  cast_kernel<<<grid_for(n), 256>>>(dst, dt, src, st, n);
  RAE_CUDA_OK(cudaGetLastError());
}

void fill(void* dst, DType t, int64_t n, double v) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), 256>>>(dst, t, n, v);
  RAE_CUDA_OK(cudaGetLastError());
}

namespace {
struct StridedArgs {
  int64_t shape[8], dst_strides[8], src_strides[8];
  int ndim;
};
template <typename T>
__global__ void strided_copy_kernel(T* dst, const T* src, StridedArgs a, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rem = i, so = 0, dof = 0;
    for (int d = a.ndim - 1; d >= 0; --d) {  // unravel the flat index, last dim fastest
      int64_t k = rem % a.shape[d];
      rem /= a.shape[d];
      so += k * a.src_strides[d];
      dof += k * a.dst_strides[d];
    }
    dst[dof] = src[so];
  }
}
}  // namespace

void strided_copy(void* dst, const int64_t* dst_strides, const void* src, const int64_t* src_strides,
                  const int64_t* shape, int ndim, size_t elem_size) {
  StridedArgs a{};
  a.ndim = ndim;
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) {
    a.shape[d] = shape[d];
    a.dst_strides[d] = dst_strides[d];
    a.src_strides[d] = src_strides[d];
    n *= shape[d];
  }
  if (n == 0) return;
  switch (elem_size) {
    case 1: strided_copy_kernel<<<grid_for(n), 256>>>(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), a, n); break;
    case 2: strided_copy_kernel<<<grid_for(n), 256>>>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), a, n); break;
    case 4: strided_copy_kernel<<<grid_for(n), 256>>>(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), a, n); break;
    case 8: strided_copy_kernel<<<grid_for(n), 256>>>(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), a, n); break;
    default: RAE_THROW("strided_copy: unsupported element size ", elem_size);
  }
  RAE_CUDA_OK(cudaGetLastError());
}

Stats stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().st;
}
void reset_peak() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().st.peak_in_use = cache().st.in_use;
}
void release_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& kv : c.free_blocks) {
    cudaFree(kv.second);
    c.sizes.erase(kv.second);
  }
  c.free_blocks.clear();
  c.st.cached = 0;
}

}  // namespace rae::cuda_memory
