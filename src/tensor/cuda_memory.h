// Device memory for CUDA builds: a caching allocator (no cudaMalloc inside a training step)
// and copies. Only compiled and called when RAE_WITH_CUDA is defined.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace rae::cuda_memory {

void* alloc(size_t bytes, int device);
void free(void* ptr, int device);  // returns the block to the cache
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
void copy(void* dst, const void* src, size_t bytes, CopyKind kind);  // synchronous
void memset0(void* dst, size_t bytes);
void cast(void* dst, DType dst_t, const void* src, DType src_t, int64_t n);
void fill(void* dst, DType t, int64_t n, double value);
// Element-wise copy between two strided views on the same device (strides in elements).
void strided_copy(void* dst, const int64_t* dst_strides, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int ndim, size_t elem_size);

// The stream this thread issues device work to: nullptr, the legacy default stream, unless
// set_stream() chose another (train/graph_step.cpp, while capturing a CUDA graph). The CUDA ops,
// fills, casts, device-to-device copies and memsets of this layer go there. A cudaStream_t.
void* stream();
void set_stream(void* s);

// A private pool for a CUDA graph's memory (train/graph_step.cpp). Between begin_graph_pool()
// and end_graph_pool(), blocks are allocated from the pool's free blocks (else from the shared
// cache or the driver) and every block freed joins the pool; blocks the pool holds go back only
// to it. So the addresses a captured graph's kernels use stay reserved for its replays, never
// handed to another tensor. release_graph_pool() gives its free blocks back to the shared cache
// (the graph is gone). One pool is open at a time.
int begin_graph_pool();
void end_graph_pool();
void release_graph_pool(int id);

struct Stats {
  size_t in_use = 0, cached = 0, peak_in_use = 0;
};
Stats stats();
void reset_peak();
void release_cache();  // frees cached blocks back to the driver

}  // namespace rae::cuda_memory
