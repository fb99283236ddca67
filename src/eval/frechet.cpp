#include "eval/frechet.h"

#include <cmath>

#include "core/error.h"
#include "eval/linalg.h"

namespace rae::eval {

namespace {

void check_stats(const GaussianStats& s, const char* which) {
  const int64_t d = s.dim;
  RAE_CHECK(d > 0 && static_cast<int64_t>(s.mu.size()) == d &&
                static_cast<int64_t>(s.sigma.size()) == d * d,
            "Fréchet distance: ", which, " statistics are malformed (dim ", d, ", mu ", s.mu.size(),
            ", sigma ", s.sigma.size(), " values)");
  for (double v : s.mu)
    RAE_CHECK(std::isfinite(v), "Fréchet distance: ", which, " mean has NaN/Inf");
  for (double v : s.sigma)
    RAE_CHECK(std::isfinite(v), "Fréchet distance: ", which, " covariance has NaN/Inf");
}

}  // namespace

FrechetTerms frechet_terms(const GaussianStats& a, const GaussianStats& b) {
  check_stats(a, "first");
  check_stats(b, "second");
  RAE_CHECK(a.dim == b.dim, "Fréchet distance: feature dimensions differ (", a.dim, " vs ", b.dim,
            ")");
  const int64_t d = a.dim;
  FrechetTerms t;
  for (int64_t i = 0; i < d; ++i) {
    const double diff = a.mu[i] - b.mu[i];
    t.mean_term += diff * diff;
    t.trace_1 += a.sigma[i * d + i];
    t.trace_2 += b.sigma[i * d + i];
  }
  // S_1 = V diag(w) V^T; rows of `vt` are the eigenvectors (V^T). Bt = diag(sqrt(w)) V^T = B^T.
  std::vector<double> vt = a.sigma;
  std::vector<double> w = symmetric_eigen(vt, d, /*vectors=*/true);
  for (int64_t i = 0; i < d; ++i) {
    if (w[i] < 0) ++t.negative_eigenvalues;
    const double s = std::sqrt(std::max(w[i], 0.0));
    double* row = vt.data() + i * d;
    for (int64_t j = 0; j < d; ++j) row[j] *= s;
  }
  // M = B^T S_2 B = Bt S_2 Bt^T: C = Bt S_2, M = C Bt^T.
  std::vector<double> c(static_cast<size_t>(d * d)), m(static_cast<size_t>(d * d));
  gemm_f64(vt.data(), b.sigma.data(), c.data(), d, d, d, /*trans_b=*/false);
  gemm_f64(c.data(), vt.data(), m.data(), d, d, d, /*trans_b=*/true);
  std::vector<double> mu = symmetric_eigen(m, d, /*vectors=*/false);
  for (double ev : mu) {
    if (ev < 0) {
      ++t.negative_eigenvalues;
      continue;
    }
    t.trace_sqrt += std::sqrt(ev);
  }
  t.distance = t.mean_term + t.trace_1 + t.trace_2 - 2 * t.trace_sqrt;
  return t;
}

}  // namespace rae::eval
