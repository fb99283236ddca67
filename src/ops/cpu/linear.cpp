// CPU GEMM (the BLAS library of cpu/blas.h, single-threaded, in oneTBB tiles) and the linear
// layer, forward and backward.
#include "ops/linear.h"

#include "ops/cpu/blas.h"
#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// One single-threaded library call: row-major C (M, N) = alpha * op(A) @ op(B) + beta * C.
void gemm_call(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, double beta, float* C, int64_t ldc) {
  RAE_BLAS(cblas_sgemm)
  (kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, int(M), int(N), int(K),
   static_cast<float>(alpha), A, int(lda), B, int(ldb), static_cast<float>(beta), C, int(ldc));
}
void gemm_call(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  RAE_BLAS(cblas_dgemm)
  (kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, int(M), int(N), int(K), alpha, A,
   int(lda), B, int(ldb), beta, C, int(ldc));
}

// GEMMs with at most this many multiply-adds run as one call (an attention head's 256 x 256 x 64
// products, which already run in parallel oneTBB tasks, one per head).
constexpr int64_t kSerialMacs = int64_t{1} << 23;

// Splits n into parts of about `target` (at least 1 part), each a multiple of 64 but the last:
// tile edges on 64-element boundaries keep the library's tiles aligned like the whole matrix.
int64_t tile_size(int64_t n, int64_t target) {
  const int64_t parts = std::max<int64_t>(1, (n + target - 1) / target);
  const int64_t size = (n + parts - 1) / parts;
  return std::min(n, (size + 63) / 64 * 64);
}

}  // namespace

// Exposed to the other CPU kernels (attention) through cpu_util.h. Large products are cut into
// tiles of C (about 256 rows x 512 columns, full K) run as parallel oneTBB tasks. The tiles
// depend on the shape only, never on the thread count, and each element of C is computed by
// one library call over the whole K in the same order: the result is bitwise identical for
// every thread count (tests/ops/test_ops_cpu_vec.cpp, GemmIsThreadCountInvariant).
template <typename T>
void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const T* A,
             int64_t lda, const T* B, int64_t ldb, double beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS may not touch C when K == 0; define it as beta * C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0 ? T(0) : T(beta * C[i * ldc + j]);
    return;
  }
  blas_init();
  lda = std::max<int64_t>(lda, 1), ldb = std::max<int64_t>(ldb, 1), ldc = std::max<int64_t>(ldc, 1);
  if (M * N * K <= kSerialMacs) {
    gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t mt = tile_size(M, 256), nt = tile_size(N, 512);
  const int64_t tiles_m = (M + mt - 1) / mt, tiles_n = (N + nt - 1) / nt;
  parallel_blocks(tiles_m * tiles_n, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = (t / tiles_n) * mt, n0 = (t % tiles_n) * nt;
      // rows m0.. of op(A): rows of A, or columns of A when transposed; likewise for op(B)
      const T* a = ta ? A + m0 : A + m0 * lda;
      const T* b = tb ? B + n0 * ldb : B + n0;
      gemm_call(ta, tb, std::min(mt, M - m0), std::min(nt, N - n0), K, alpha, a, lda, b, ldb, beta,
                C + m0 * ldc + n0, ldc);
    }
  });
}
template void gemm_rm<float>(bool, bool, int64_t, int64_t, int64_t, double, const float*, int64_t,
                             const float*, int64_t, double, float*, int64_t);
template void gemm_rm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                              const double*, int64_t, double, double*, int64_t);

void matmul(const Tensor& C, const Tensor& A, const Tensor& B, bool ta, bool tb, double alpha,
            double beta) {
  float_dispatch(C.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const int o = A.ndim() == 3 ? 1 : 0;  // first matrix dim
    const int64_t *cs = C.shape().begin(), *as = A.shape().begin();
    int64_t M = cs[o], N = cs[o + 1], K = ta ? as[o] : as[o + 1];
    if (o == 0) {
      Rows<T> a = rows_of<T>(A), b = rows_of<T>(B), c = rows_of<T>(C);
      gemm_rm<T>(ta, tb, M, N, K, alpha, a.p, a.ld, b.p, b.ld, beta, c.p, c.ld);
      return;
    }
    const int64_t lda = A.dim(2), ldb = B.dim(2);
    for (int64_t i = 0; i < C.dim(0); ++i)  // each GEMM parallel over its tiles
      gemm_rm<T>(ta, tb, M, N, K, alpha, ptr<T>(A) + i * A.dim(1) * lda, lda,
                 ptr<T>(B) + i * B.dim(1) * ldb, ldb, beta, ptr<T>(C) + i * M * N, N);
  });
}

void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  float_dispatch(x.dtype(), "linear_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    const T* bias = ptr<T>(b);
    const int64_t O = w.dim(0), I = w.dim(1);
    if (bias) {
      parallel_blocks(o.n, row_grain(O), [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) std::copy(bias, bias + O, o.row(i));
      });
    }
    // out (N, O) = x (N, I) @ w (O, I)^T (+ out when it holds the bias)
    gemm_rm<T>(false, true, xr.n, O, I, 1.0, xr.p, xr.ld, ptr<T>(w), I, bias ? 1.0 : 0.0, o.p,
               o.ld);
  });
}

void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w) {
  float_dispatch(x.dtype(), "linear_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout);
    const int64_t O = w.dim(0), I = w.dim(1);
    if (dx.defined()) {  // dx (N, I) += dout (N, O) @ w (O, I)
      Rows<T> g = rows_of<T>(dx);
      gemm_rm<T>(false, false, d.n, I, O, 1.0, d.p, d.ld, ptr<T>(w), I, 1.0, g.p, g.ld);
    }
    if (dw.defined())  // dw (O, I) += dout^T (O, N) @ x (N, I)
      gemm_rm<T>(true, false, O, I, d.n, 1.0, d.p, d.ld, xr.p, xr.ld, 1.0, ptr<T>(dw), I);
    if (db.defined()) {
      std::vector<double> s = column_reduce(d.n, O, [&](int64_t i, double* acc) {
        const T* r = d.row(i);
        for (int64_t j = 0; j < O; ++j) acc[j] += r[j];
      });
      T* g = ptr<T>(db);
      for (int64_t j = 0; j < O; ++j) g[j] += static_cast<T>(s[j]);
    }
  });
}

}  // namespace rae::ops::cpu
