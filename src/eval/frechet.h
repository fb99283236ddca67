// The Fréchet distance between two Gaussians, the FID (and, on the spatial features, sFID):
//   d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2}).
// The ADM evaluator and torch-fidelity take tr(sqrtm(S_1 @ S_2)) with scipy.linalg.sqrtm (a Schur
// method on the non-symmetric product); its trace is the sum of the square roots of the product's
// eigenvalues. Those are the eigenvalues of the symmetric positive semi-definite B^T S_2 B with
// S_1 = B B^T, B = V diag(sqrt(w)) from S_1's eigendecomposition; we compute them with LAPACK
// dsyevd, which is about 10x faster than a Schur decomposition of the 2048 x 2048 product and
// never produces complex values. Eigenvalues that rounding leaves slightly negative (singular
// covariances) count as 0, as the real part of scipy's complex square root does. Agreement with
// SciPy: tests/eval (random, rank-deficient, ill-conditioned and same-distribution covariances).
#pragma once
#include "eval/feature_stats.h"

namespace rae::eval {

struct FrechetTerms {
  double distance = 0;   // the FID
  double mean_term = 0;  // |mu_1 - mu_2|^2
  double trace_1 = 0, trace_2 = 0;
  double trace_sqrt = 0;             // tr((S_1 S_2)^{1/2})
  int64_t negative_eigenvalues = 0;  // of S_1 or of B^T S_2 B, clamped to 0 (rounding)
};

FrechetTerms frechet_terms(const GaussianStats& a, const GaussianStats& b);
inline double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  return frechet_terms(a, b).distance;
}

}  // namespace rae::eval
