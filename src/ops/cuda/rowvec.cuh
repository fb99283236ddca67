// Vectorised row kernels' shared pieces: 16-byte loads and stores of F32 (4 per vector) or BF16
// (8 per vector) rows converted to F32 registers, the test for whether a tensor's rows allow them,
// the run-time switch back to the scalar kernels, and a deterministic chunk-sum pass.
//
// Switch: RAE_CUDA_LEGACY unset (default) runs every fast path; "1" or "all" runs none (the
// scalar kernels as before); a comma list turns off the named ones: norm (RMSNorm/LayerNorm
// vectorised kernels), bgrad (bias gradient in the weight-gradient GEMM), elementwise
// (vectorised SwiGLU, gates, modulation, axpy). tests/device/check.sh runs the CUDA tests both
// ways.
#pragma once
#include <cstdlib>
#include <cstring>

#include "ops/cuda/common.cuh"

namespace rae::ops::cuda_detail {

// True unless RAE_CUDA_LEGACY turns off `feature` (read at each call: a getenv and a scan of a
// short string, next to a kernel launch).
inline bool fast_path(const char* feature) {
  const char* s = std::getenv("RAE_CUDA_LEGACY");
  if (!s || !*s || std::strcmp(s, "0") == 0) return true;
  if (std::strcmp(s, "1") == 0 || std::strcmp(s, "all") == 0) return false;
  const size_t n = std::strlen(feature);
  for (const char* p = s; *p;) {  // comma-separated names
    const char* e = std::strchr(p, ',');
    const size_t len = e ? static_cast<size_t>(e - p) : std::strlen(p);
    if (len == n && std::strncmp(p, feature, n) == 0) return false;
    if (!e) break;
    p = e + 1;
  }
  return true;
}

// Elements per 16-byte vector.
template <class T>
constexpr int kVec = 16 / sizeof(T);

template <class T>
__device__ __forceinline__ void load_vec(const T* p, float (&f)[kVec<T>]) {
  int4 raw = *reinterpret_cast<const int4*>(p);
  if constexpr (sizeof(T) == 4) {
    const float* v = reinterpret_cast<const float*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) f[k] = v[k];
  } else {
    const __nv_bfloat162* v = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float2 t = __bfloat1622float2(v[k]);
      f[2 * k] = t.x;
      f[2 * k + 1] = t.y;
    }
  }
}

template <class T>
__device__ __forceinline__ void store_vec(T* p, const float (&f)[kVec<T>]) {
  int4 raw;
  if constexpr (sizeof(T) == 4) {
    float* v = reinterpret_cast<float*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = f[k];
  } else {
    __nv_bfloat162* v = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
  }
  *reinterpret_cast<int4*>(p) = raw;
}

// A tensor's rows for the vectorised kernels: base pointer and row stride in elements.
struct Rows {
  void* p = nullptr;
  int64_t ld = 0;
};

// Rows of `t` (last dim C) when they allow 16-byte vector access in dtype dt: t has dtype dt,
// 16-byte aligned start, row stride a multiple of the vector, C a multiple of the vector.
// Undefined tensors pass (p = nullptr). Anything else: false.
inline bool vec_rows(const Tensor& t, DType dt, int64_t C, Rows* r) {
  if (!t.defined()) {
    *r = Rows{};
    return true;
  }
  if (t.dtype() != dt || !t.is_cuda()) return false;
  const int64_t v = dt == DType::BF16 ? 8 : (dt == DType::F32 ? 4 : 0);
  if (v == 0 || C % v != 0 || t.numel() % C != 0) return false;
  Ptr q = ptr(t, "vec_rows", "t");  // checks the rows are uniformly strided
  int64_t ld = (q.cols == 1 && q.stride == 1) ? C : q.stride;
  if (q.cols != 1 && q.cols != C) return false;
  if (ld % v != 0 || (reinterpret_cast<uintptr_t>(t.raw()) & 15) != 0) return false;
  *r = Rows{t.raw(), ld};
  return true;
}

// out[p, c] += sum over k < per of part[(p * per + k) * C + c], summed in a fixed order (eight
// interleaved partial sums, then those in order): deterministic. Nothing when `out` is null.
// (Defined in norm_fast.cu; kernels cannot be launched across files without relocatable code.)
void chunk_sum(const float* part, int64_t per, int64_t P, int64_t C, Ptr out,
               bool overwrite = false);

// Rows per chunk of a grouped column reduction whose groups are `rpp` consecutive rows (rpp = 1:
// no grouping constraint): chunks never straddle two groups, and hold at most `most` rows.
inline int64_t chunk_rows_for(int64_t rpp, int64_t most) {
  if (rpp <= 1) return most;
  if (rpp <= most) return rpp;
  for (int64_t c = most; c > 1; --c)
    if (rpp % c == 0) return c;
  return 1;
}

}  // namespace rae::ops::cuda_detail
