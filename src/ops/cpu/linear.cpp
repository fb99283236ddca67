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

// Number of strips a GEMM of M x N x K multiply-adds is cut into: 4 from 2^26 (about 0.5 ms on
// one core), 2 above 2^24, else 1 (a single call: e.g. an attention head's 256 x 256 x 64
// products, which already run in parallel oneTBB tasks). Each strip repacks the shorter operand,
// so more strips cost copies: the DiT^DH-S step at one thread took 2.44-2.58 s with one strip,
// 2.58-2.71 s with up to 4 and 2.67 s with up to 8 (docs/perf/cpu-ops.md). Powers of two, so 2
// and 4 threads get equal shares; a function of the shape only.
int64_t strip_count(int64_t M, int64_t N, int64_t K) {
  const int64_t macs = M * N * K, widest = std::max(M, N);
  int64_t strips = macs >= (int64_t{1} << 26) ? 4 : macs > (int64_t{1} << 24) ? 2 : 1;
  while (strips > 1 && widest / strips < 32) strips /= 2;
  return strips;
}

}  // namespace

// Exposed to the other CPU kernels (attention) through cpu_util.h. Large products are cut into
// strips of C along its longer side (rows when M >= N, else columns; full K), run as parallel
// oneTBB tasks. Each library call packs its own part of the longer operand and the whole
// shorter one, so the strips repack only the shorter operand (2-D tiles repacked both). The strips
// depend on the shape only, never on the thread count, and each element of C is computed by one
// library call over the whole K in the same order: the result is bitwise identical for every
// thread count (tests/ops/test_ops_cpu_blas.cpp).
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
  const int64_t strips = strip_count(M, N, K);
  if (strips == 1) {
    gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const bool rows = M >= N;
  const int64_t len = rows ? M : N;
  // strip edges on multiples of 16 elements (64 bytes), so strips start cache-line aligned
  // whenever the matrix does
  const int64_t step = std::min(len, ((len + strips - 1) / strips + 15) / 16 * 16);
  parallel_blocks((len + step - 1) / step, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t o = s * step, n = std::min(step, len - o);
      if (rows) {  // rows o.. of op(A): rows of A, or its columns when transposed
        gemm_call(ta, tb, n, N, K, alpha, ta ? A + o : A + o * lda, lda, B, ldb, beta, C + o * ldc,
                  ldc);
      } else {  // columns o.. of op(B)
        gemm_call(ta, tb, M, n, K, alpha, A, lda, tb ? B + o * ldb : B + o, ldb, beta, C + o, ldc);
      }
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
                     const Tensor& x, const Tensor& w, GradMode mode) {
  float_dispatch(x.dtype(), "linear_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout);
    const int64_t O = w.dim(0), I = w.dim(1);
    if (dx.defined()) {  // dx (N, I) (+)= dout (N, O) @ w (O, I); beta 0 never reads dx
      Rows<T> g = rows_of<T>(dx);
      const double beta = mode == GradMode::Overwrite ? 0.0 : 1.0;
      gemm_rm<T>(false, false, d.n, I, O, 1.0, d.p, d.ld, ptr<T>(w), I, beta, g.p, g.ld);
    }
    if (dw.defined())  // dw (O, I) += dout^T (O, N) @ x (N, I)
      gemm_rm<T>(true, false, O, I, d.n, 1.0, d.p, d.ld, xr.p, xr.ld, 1.0, ptr<T>(dw), I);
    if (db.defined()) {
      std::vector<double> s =
          column_reduce(d.n, O, [&](int64_t i, double* acc) { accumulate_row(acc, d.row(i), O); });
      T* g = ptr<T>(db);
      for (int64_t j = 0; j < O; ++j) g[j] += static_cast<T>(s[j]);
    }
  });
}

}  // namespace rae::ops::cpu
