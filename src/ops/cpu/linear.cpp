// CPU GEMM (OpenBLAS cblas) and the linear layer, forward and backward.
#include "ops/linear.h"

#include <cblas.h>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

inline CBLAS_TRANSPOSE tr(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}

// Row-major C (M, N) = alpha * op(A) @ op(B) + beta * C with leading dims lda, ldb, ldc.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, double beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, static_cast<float>(alpha), A, lda, B, ldb,
              static_cast<float>(beta), C, ldc);
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

BlasSingleThread::BlasSingleThread(bool active)
    : previous_(active ? openblas_get_num_threads() : 1) {
  if (previous_ > 1) openblas_set_num_threads(1);
}
BlasSingleThread::~BlasSingleThread() {
  if (previous_ > 1) openblas_set_num_threads(previous_);
}

// Exposed to the other CPU kernels (attention) through this declaration.
template <typename T>
void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const T* A,
             int64_t lda, const T* B, int64_t ldb, double beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS may not touch C when K == 0; define it as beta * C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0 ? T(0) : T(beta * C[i * ldc + j]);
    return;
  }
  gemm(ta, tb, M, N, K, alpha, A, std::max<int64_t>(lda, 1), B, std::max<int64_t>(ldb, 1), beta, C,
       std::max<int64_t>(ldc, 1));
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
    for (int64_t i = 0; i < C.dim(0); ++i)  // OpenBLAS threads inside each GEMM
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
