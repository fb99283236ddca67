#include "eval/linalg.h"

#include <algorithm>

#include "core/error.h"
#include "ops/cpu/blas.h"

// BLAS and LAPACK through the project's one CPU library (ops/cpu/blas.h: prefixed symbols, LP64,
// single-threaded).

namespace rae::eval {

std::vector<double> symmetric_eigen(std::vector<double>& a, int64_t n, bool vectors) {
  RAE_CHECK(n > 0 && static_cast<int64_t>(a.size()) == n * n, "symmetric_eigen: ", a.size(),
            " values for a ", n, " x ", n, " matrix");
  RAE_CHECK(n < (int64_t{1} << 30), "symmetric_eigen: matrix too large for 32-bit LAPACK");
  // Row-major upper triangle == column-major lower triangle of the same (symmetric) matrix; the
  // eigenvectors LAPACK writes as columns are then rows in row-major order.
  const char jobz = vectors ? 'V' : 'N', uplo = 'L';
  const int nn = static_cast<int>(n);
  std::vector<double> w(n);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  ops::cpu::blas_init();
  RAE_BLAS(dsyevd_)
  (&jobz, &uplo, &nn, a.data(), &nn, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1,
   1);
  RAE_CHECK(info == 0, "LAPACK dsyevd workspace query failed (info ", info, ")");
  lwork = static_cast<int>(work_query) + 1;
  liwork = std::max(iwork_query, 1);
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  RAE_BLAS(dsyevd_)
  (&jobz, &uplo, &nn, a.data(), &nn, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1,
   1);
  RAE_CHECK(info == 0, "LAPACK dsyevd failed on a ", n, " x ", n, " matrix (info ", info,
            info > 0 ? ": the eigenvalues did not converge; the matrix may hold NaN or Inf)" : ")");
  return w;
}

void gemm_f64(const double* a, const double* b, double* c, int64_t n, int64_t k, int64_t m,
              bool trans_b) {
  ops::cpu::blas_init();
  RAE_BLAS(cblas_dgemm)
  (101, 111, trans_b ? 112 : 111, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
   1.0, a, static_cast<int>(std::max<int64_t>(k, 1)), b,
   static_cast<int>(std::max<int64_t>(trans_b ? k : m, 1)), 0.0, c,
   static_cast<int>(std::max<int64_t>(m, 1)));
}

void syrk_upper_f64(const double* x, int64_t rows, int64_t n, double alpha, double* c) {
  if (rows == 0) return;
  ops::cpu::blas_init();
  RAE_BLAS(cblas_dsyrk)
  (101, 121, 112, static_cast<int>(n), static_cast<int>(rows), alpha, x, static_cast<int>(n), 1.0,
   c, static_cast<int>(n));
}

void symmetrize_from_upper(double* c, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) c[j * n + i] = c[i * n + j];
}

}  // namespace rae::eval
