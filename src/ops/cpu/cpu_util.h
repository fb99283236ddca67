// Helpers shared by the CPU kernels: dtype dispatch, row-strided matrix views, deterministic
// parallel loops and column reductions.
#pragma once
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "ops/op_checks.h"
#include "tensor/tensor.h"

namespace rae::ops::cpu {

// Row-major GEMM (defined in cpu/linear.cpp for float and double; the library: cpu/blas.h):
// C (M, N) = alpha * op(A) @ op(B) + beta * C, with leading dims lda, ldb, ldc. Large products
// run as parallel oneTBB tasks over tiles fixed by the shape (bitwise identical results for any
// thread count); small ones as one single-threaded call, so they may be called from oneTBB tasks.
template <typename T>
void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const T* A,
             int64_t lda, const T* B, int64_t ldb, double beta, T* C, int64_t ldc);

// GCC function multiversioning for the hot loops, since the build targets baseline x86-64
// (SSE2): clones for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, chosen once
// at load time by the CPU. RAE_VEC_CLONES_V3 omits the AVX-512 clone, for loops it made slower
// (the memory-bound AdamW update: 10% slower than AVX2 on the AMD EPYC of docs/perf/cpu-ops.md).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RAE_VEC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define RAE_VEC_CLONES_V3 __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RAE_VEC_CLONES
#define RAE_VEC_CLONES_V3
#endif

// Vector kernels (cpu/vec_math.cpp), compiled in an AVX2+FMA clone and a baseline clone picked
// at load time. Results are deterministic on a given machine (fixed lane order, no threads).
// y[j] = exp(x[j] - shift) for float (a polynomial exp, within 2 ulp of expf for inputs in
// [-87.3, 88]; 0 below, exp(88) above), returning sum_j y[j] accumulated in double over fixed
// lanes. x and y may alias.
double exp_shift_sum(const float* x, float* y, int64_t n, float shift);
// max_j x[j] (n >= 1).
float row_max(const float* x, int64_t n);
// y[j] *= a.
void scale_inplace(float* y, int64_t n, float a);
// sum_j x[j]^2 in double with independent lane accumulators.
double sum_squares(const float* x, int64_t n);
double sum_squares(const double* x, int64_t n);
// One row of RMSNorm + modulation: y[j] = T(x[j] * rstd) * w[j] * (1 + s[j]) + b[j].
void rms_modulate_row(const float* x, double rstd, const float* w, const float* s, const float* b,
                      float* y, int64_t n);
void rms_modulate_row(const double* x, double rstd, const double* w, const double* s,
                      const double* b, double* y, int64_t n);

// SiLU and SwiGLU rows for float, sigmoid through the polynomial exp (forward y = silu(x) or
// silu(x1) * x2; backward ACCUMULATES into gx / g1, g2 like the ops).
void silu_row(const float* x, float* y, int64_t n);
void silu_backward_row(const float* x, const float* dy, float* gx, int64_t n);
void swiglu_row(const float* x1, const float* x2, float* y, int64_t n);
void swiglu_backward_row(const float* x1, const float* x2, const float* dy, float* g1, float* g2,
                         int64_t n);
// One token row of the RMSNorm + modulation backward for float, in double: adds dy into ssh,
// dy * rmsnorm(x) into ssc and d(rmsnorm out) * xhat into dw (pass a scratch row when dw is not
// wanted), leaves d xhat in gy, and when dx is not null adds the input gradient into dx.
// w is the weight or a row of ones.
void rms_modulate_backward_row(const float* x, const float* dy, const float* s, const float* w,
                               double rstd, double* ssh, double* ssc, double* dw, double* gy,
                               float* dx, int64_t n);
// acc[j] += x[j] (column sums in double, e.g. bias gradients).
void accumulate_row(double* acc, const float* x, int64_t n);
void accumulate_row(double* acc, const double* x, int64_t n);

namespace detail {

// Calls fn(T{}) with T = float or double by `dt`; other dtypes are an error naming the op.
template <typename Fn>
void float_dispatch(DType dt, const char* op, Fn&& fn) {
  if (dt == DType::F32) {
    fn(float{});
  } else if (dt == DType::F64) {
    fn(double{});
  } else {
    RAE_THROW(op, ": the CPU backend runs f32 and f64, got ", dtype_name(dt));
  }
}

// A tensor seen as rows of its last dim: row i starts at p + i * ld.
template <typename T>
struct Rows {
  T* p = nullptr;
  int64_t n = 0, c = 0, ld = 0;
  T* row(int64_t i) const { return p + i * ld; }
};

template <typename T>
Rows<T> rows_of(const Tensor& t) {
  Rows<T> r;
  if (!t.defined()) return r;
  int64_t ld = 0;
  RAE_CHECK(check::row_strided(t, &ld), "CPU op: tensor ", t.str(), " is not row-strided");
  r.p = t.data<T>();
  r.c = check::cols(t);
  r.n = check::nrows(t);
  r.ld = ld;
  return r;
}

// Flat pointer of a contiguous tensor (undefined -> nullptr).
template <typename T>
T* ptr(const Tensor& t) {
  if (!t.defined()) return nullptr;
  RAE_CHECK(t.is_contiguous(), "CPU op: tensor ", t.str(), " must be contiguous");
  return t.data<T>();
}

// Parallel loop over [0, n) in blocks; fn(begin, end). Small problems run inline.
template <typename Fn>
void parallel_blocks(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n <= grain) {
    fn(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end()); });
}

// Grain (rows per task) so that each task touches roughly 16K elements.
inline int64_t row_grain(int64_t cols) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
}

// Deterministic column sums over rows: rows are cut into fixed chunks (independent of the
// thread count), each chunk sums into its own buffer in parallel, then the chunk buffers are
// added in order. fn(row, acc) adds row `row`'s contribution into acc (C doubles).
// At most 16 chunks (of at least row_grain(c) rows): the partial buffers stay small (16 C
// doubles) however wide the rows, e.g. 0.6 MB for a (2048, 4608) bias gradient, where one chunk
// per row_grain rows needed 25 MB, zeroed and faulted in on every call.
template <typename Fn>
std::vector<double> column_reduce(int64_t n, int64_t c, Fn&& fn) {
  const int64_t chunk = std::max<int64_t>(row_grain(c), (n + 15) / 16);
  const int64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(nchunks, 1) * c), 0.0);
  parallel_blocks(nchunks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t k = b0; k < b1; ++k) {
      double* acc = partial.data() + k * c;
      for (int64_t i = k * chunk; i < std::min(n, (k + 1) * chunk); ++i) fn(i, acc);
    }
  });
  std::vector<double> total(static_cast<size_t>(c), 0.0);
  for (int64_t k = 0; k < nchunks; ++k)
    for (int64_t j = 0; j < c; ++j) total[j] += partial[k * c + j];
  return total;
}

// Deterministic scalar sum over [0, n) of fn(i) in double.
template <typename Fn>
double scalar_reduce(int64_t n, Fn&& fn) {
  const int64_t chunk = 8192;
  const int64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(nchunks, 1)), 0.0);
  parallel_blocks(nchunks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t k = b0; k < b1; ++k) {
      double s = 0;
      for (int64_t i = k * chunk; i < std::min(n, (k + 1) * chunk); ++i) s += fn(i);
      partial[k] = s;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// Per-sample or per-token conditioning rows (shift/scale/gate): row of token r = b * T + t.
template <typename T>
struct CondRows {
  Rows<T> r;
  int64_t tokens_per_row = 1;  // T for per-sample (B, C), 1 for per-token (B, T, C)
  bool defined() const { return r.p != nullptr; }
  T* row(int64_t token_row) const { return r.row(token_row / tokens_per_row); }
};

template <typename T>
CondRows<T> cond_rows_of(const Tensor& t, int64_t tokens) {
  CondRows<T> c;
  if (!t.defined()) return c;
  c.r = rows_of<T>(t);
  c.tokens_per_row = t.ndim() == 2 ? tokens : 1;
  return c;
}

}  // namespace detail
}  // namespace rae::ops::cpu
