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
  // CUDA graph pools: their free blocks, which pool holds a block, the one open (0: none).
  std::map<int, std::multimap<size_t, void*>> pool_free;
  std::unordered_map<void*, int> pool_of;
  int open_pool = 0, next_pool = 1;
};

// A free block of at least `sz` (at most twice as large) from `fl`, or nullptr.
void* take(std::multimap<size_t, void*>& fl, size_t* sz) {
  auto it = fl.lower_bound(*sz);
  if (it == fl.end() || it->first > *sz * 2) return nullptr;
  void* p = it->second;
  *sz = it->first;
  fl.erase(it);
  return p;
}
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
  void* p = nullptr;
  if (c.open_pool) {  // a graph capture: the pool's own blocks first
    p = take(c.pool_free[c.open_pool], &sz);
    if (p) c.st.cached -= sz;
  }
  if (!p) {
    p = take(c.free_blocks, &sz);
    if (p) c.st.cached -= sz;
  }
  if (!p) {
    cudaError_t e = cudaMalloc(&p, sz);
    if (e != cudaSuccess) {  // release the cache and retry once
      (void)cudaGetLastError();
      for (auto& kv : c.free_blocks) {
        cudaFree(kv.second);
        c.sizes.erase(kv.second);
        c.st.cached -= kv.first;  // (graph pools keep theirs)
      }
      c.free_blocks.clear();
      e = cudaMalloc(&p, sz);
      RAE_CHECK(e == cudaSuccess, "CUDA out of memory allocating ", bytes, " bytes (in use ",
                c.st.in_use, ")");
    }
    c.sizes[p] = sz;
  }
  if (c.open_pool) c.pool_of[p] = c.open_pool;
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
  auto owner = c.pool_of.find(p);
  if (owner == c.pool_of.end() && c.open_pool) {  // freed during a capture: the graph's now
    owner = c.pool_of.emplace(p, c.open_pool).first;
  }
  if (owner != c.pool_of.end() && c.pool_free.count(owner->second)) {
    c.pool_free[owner->second].emplace(sz, p);
    return;
  }
  if (owner != c.pool_of.end()) c.pool_of.erase(owner);  // its pool was released
  c.free_blocks.emplace(sz, p);
}

int begin_graph_pool() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  RAE_CHECK(c.open_pool == 0, "cuda_memory: a graph pool is already open");
  c.open_pool = c.next_pool++;
  c.pool_free[c.open_pool];
  return c.open_pool;
}

void end_graph_pool() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.open_pool = 0;
}

void release_graph_pool(int id) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.pool_free.find(id);
  if (it == c.pool_free.end()) return;
  for (auto& [sz, p] : it->second) {
    c.pool_of.erase(p);
    c.free_blocks.emplace(sz, p);
  }
  c.pool_free.erase(it);
  if (c.open_pool == id) c.open_pool = 0;
}

void copy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                      : cudaMemcpyDeviceToDevice;
  if (!t_stream) {  // the legacy default stream: as every copy was before streams existed
    RAE_CUDA_OK(cudaMemcpy(dst, src, bytes, k));
    return;
  }
  // Another stream (a CUDA graph capture's): device copies are queued there (and captured);
  // copies with the host stay synchronous (they cannot be part of a captured step).
  RAE_CUDA_OK(cudaMemcpyAsync(dst, src, bytes, k, t_stream));
  if (kind != CopyKind::DeviceToDevice) RAE_CUDA_OK(cudaStreamSynchronize(t_stream));
}

void memset0(void* dst, size_t bytes) {
  if (!t_stream) {
    RAE_CUDA_OK(cudaMemset(dst, 0, bytes));
    return;
  }
  RAE_CUDA_OK(cudaMemsetAsync(dst, 0, bytes, t_stream));
}

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
  cast_kernel<<<grid_for(n), 256, 0, t_stream>>>(dst, dt, src, st, n);
  RAE_CUDA_OK(cudaGetLastError());
}

void fill(void* dst, DType t, int64_t n, double v) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), 256, 0, t_stream>>>(dst, t, n, v);
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
    case 1: strided_copy_kernel<<<grid_for(n), 256, 0, t_stream>>>(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), a, n); break;
    case 2: strided_copy_kernel<<<grid_for(n), 256, 0, t_stream>>>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), a, n); break;
    case 4: strided_copy_kernel<<<grid_for(n), 256, 0, t_stream>>>(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), a, n); break;
    case 8: strided_copy_kernel<<<grid_for(n), 256, 0, t_stream>>>(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), a, n); break;
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
    c.st.cached -= kv.first;  // (graph pools keep theirs)
  }
  c.free_blocks.clear();
}

}  // namespace rae::cuda_memory
