// Dense symmetric linear algebra in float64 for the evaluation statistics, on the project's BLAS
// library (${RAE_BLAS_LIB}: OpenBLAS or MKL, both of which carry LAPACK). LAPACK has no C header
// we can rely on across those libraries, so the Fortran symbols are declared in linalg.cpp.
#pragma once
#include <cstdint>
#include <vector>

namespace rae::eval {

// Eigenvalues (ascending) of the symmetric n x n matrix `a` (row-major; only the upper triangle
// is read). With `vectors`, `a` is overwritten by the eigenvectors: row i of `a` is the unit
// eigenvector of eigenvalue i. LAPACK dsyevd (divide and conquer). Throws when it fails.
std::vector<double> symmetric_eigen(std::vector<double>& a, int64_t n, bool vectors);

// c (n x m, row-major) = a (n x k) @ b (k x m), or with `trans_b` a @ b^T for b (m x k).
void gemm_f64(const double* a, const double* b, double* c, int64_t n, int64_t k, int64_t m,
              bool trans_b);

// c (n x n) += alpha * x^T x for x (rows x n, row-major); only the upper triangle of c is
// updated (BLAS dsyrk).
void syrk_upper_f64(const double* x, int64_t rows, int64_t n, double alpha, double* c);

// Copies the upper triangle of the row-major n x n `c` onto its lower triangle.
void symmetrize_from_upper(double* c, int64_t n);

}  // namespace rae::eval
