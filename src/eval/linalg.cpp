#include "eval/linalg.h"

#include <cblas.h>

#include <algorithm>

#include "core/error.h"

// LAPACK's Fortran interface (LP64: 32-bit integers), as OpenBLAS and MKL export it. The trailing
// size_t arguments are the hidden lengths of the character arguments that gfortran passes;
// libraries that do not read them ignore them.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
                        double* w, double* work, const int* lwork, int* iwork, const int* liwork,
                        int* info, size_t jobz_len, size_t uplo_len);

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
  dsyevd_(&jobz, &uplo, &nn, a.data(), &nn, w.data(), &work_query, &lwork, &iwork_query, &liwork,
          &info, 1, 1);
  RAE_CHECK(info == 0, "LAPACK dsyevd workspace query failed (info ", info, ")");
  lwork = static_cast<int>(work_query) + 1;
  liwork = std::max(iwork_query, 1);
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  dsyevd_(&jobz, &uplo, &nn, a.data(), &nn, w.data(), work.data(), &lwork, iwork.data(), &liwork,
          &info, 1, 1);
  RAE_CHECK(info == 0, "LAPACK dsyevd failed on a ", n, " x ", n, " matrix (info ", info,
            info > 0 ? ": the eigenvalues did not converge; the matrix may hold NaN or Inf)" : ")");
  return w;
}

void gemm_f64(const double* a, const double* b, double* c, int64_t n, int64_t k, int64_t m,
              bool trans_b) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, n, m, k, 1.0, a,
              std::max<int64_t>(k, 1), b, std::max<int64_t>(trans_b ? k : m, 1), 0.0, c,
              std::max<int64_t>(m, 1));
}

void syrk_upper_f64(const double* x, int64_t rows, int64_t n, double alpha, double* c) {
  if (rows == 0) return;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, rows, alpha, x, n, 1.0, c, n);
}

void symmetrize_from_upper(double* c, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) c[j * n + i] = c[i * n + j];
}

}  // namespace rae::eval
