#include "ops/grad_mode.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "ops/op_checks.h"
#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_memory.h"
#endif

namespace rae::ops {

namespace {
std::atomic<bool>& overwrite_flag() {
  static std::atomic<bool> on{[] {
    const char* s = std::getenv("RAE_GRAD_OVERWRITE");
    return !(s && std::strcmp(s, "0") == 0);
  }()};
  return on;
}
}  // namespace

bool grad_overwrite_enabled() {
  return overwrite_flag().load(std::memory_order_relaxed);
}

void set_grad_overwrite(bool on) {
  overwrite_flag().store(on);
}

void zero_grad_buffer(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return;
  if (t.is_contiguous()) {
    Tensor(t).zero_();
    return;
  }
  int64_t ld = 0;
  RAE_CHECK(check::row_strided(t, &ld), "zero_grad_buffer: ", t.str(), " is not row-strided");
  const int64_t C = check::cols(t), N = check::nrows(t);
  const size_t es = dtype_size(t.dtype());
  char* p = static_cast<char*>(t.raw());
  if (t.is_cuda()) {
#ifdef RAE_WITH_CUDA
    cudaError_t rc =
        cudaMemset2DAsync(p, static_cast<size_t>(ld) * es, 0, static_cast<size_t>(C) * es,
                          static_cast<size_t>(N), static_cast<cudaStream_t>(cuda_memory::stream()));
    RAE_CHECK(rc == cudaSuccess, "zero_grad_buffer: ", cudaGetErrorString(rc));
    return;
#endif
  }
  for (int64_t r = 0; r < N; ++r)
    std::memset(p + static_cast<size_t>(r * ld) * es, 0, static_cast<size_t>(C) * es);
}

}  // namespace rae::ops
