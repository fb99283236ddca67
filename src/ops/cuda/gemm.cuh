// The CUDA backend's one GEMM entry (cuBLASLt with a cuBLAS fallback), shared by the linear
// layer and the GEMM attention path. Defined in linear.cu.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace rae::ops::cuda_detail {

// Row-major C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C (+ bias (N) per row),
// `batch` times with element strides between batches; lda/ldb/ldc are row strides in elements.
// A and B share one dtype (F32 or BF16); C is F32 or, for BF16 inputs, BF16; bias has C's dtype.
// F32 inputs multiply per ops::precision().
struct Gemm {
  int64_t M = 0, N = 0, K = 0;
  const void* A = nullptr;
  int64_t lda = 0;
  bool ta = false;
  const void* B = nullptr;
  int64_t ldb = 0;
  bool tb = false;
  DType in_t = DType::F32;
  void* C = nullptr;
  int64_t ldc = 0;
  DType c_t = DType::F32;
  float alpha = 1.f, beta = 0.f;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  const void* bias = nullptr;
  // When set (gemm_with_bgrad only): also WRITES bgrad_a[m] = sum_k op(A)[m, k] in F32, the bias
  // gradient of a weight-gradient GEMM (cuBLASLt's BGRADB epilogue), unbatched.
  float* bgrad_a = nullptr;
};

void run_gemm(const Gemm& g);
// run_gemm with g.bgrad_a filled by the GEMM's epilogue; false (nothing run) when cuBLASLt has
// no algorithm for that, and the caller reduces the bias gradient itself.
bool gemm_with_bgrad(const Gemm& g);

}  // namespace rae::ops::cuda_detail
