// The stream CUDA kernels of this thread launch on: cuda_memory::stream() (tensor/cuda_memory.h),
// the legacy default stream unless a CUDA graph capture set another. Every launch in src/ passes
// it (`<<<grid, block, smem, rae::cur_stream()>>>`), so the same code runs eagerly or captured.
#pragma once
#include <cuda_runtime.h>

#include "tensor/cuda_memory.h"

namespace rae {

inline cudaStream_t cur_stream() {
  return static_cast<cudaStream_t>(cuda_memory::stream());
}

}  // namespace rae
