#include "eval/inception_score.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace rae::eval {

namespace {

// log-softmax of one row in float64.
void log_softmax_row(const float* z, int64_t c, double* out) {
  double mx = z[0];
  for (int64_t j = 1; j < c; ++j) mx = std::max(mx, static_cast<double>(z[j]));
  double s = 0;
  for (int64_t j = 0; j < c; ++j) s += std::exp(static_cast<double>(z[j]) - mx);
  const double lse = mx + std::log(s);
  for (int64_t j = 0; j < c; ++j) out[j] = static_cast<double>(z[j]) - lse;
}

double split_score(const float* logits, int64_t rows, int64_t c) {
  std::vector<double> logp(static_cast<size_t>(rows * c));
  tbb::parallel_for(int64_t{0}, rows,
                    [&](int64_t i) { log_softmax_row(logits + i * c, c, logp.data() + i * c); });
  // Marginal q_c = mean_i p_ic, summed in row order (deterministic).
  std::vector<double> q(c, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const double* lp = logp.data() + i * c;
    for (int64_t j = 0; j < c; ++j) q[j] += std::exp(lp[j]);
  }
  std::vector<double> logq(c);
  for (int64_t j = 0; j < c; ++j) logq[j] = std::log(q[j] / static_cast<double>(rows));
  std::vector<double> kl(rows);
  tbb::parallel_for(int64_t{0}, rows, [&](int64_t i) {
    const double* lp = logp.data() + i * c;
    double s = 0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(lp[j]) * (lp[j] - logq[j]);
    kl[i] = s;
  });
  double mean_kl = 0;
  for (double v : kl) mean_kl += v;
  return std::exp(mean_kl / static_cast<double>(rows));
}

}  // namespace

InceptionScore inception_score(const float* logits, int64_t n, int64_t classes,
                               int64_t split_size) {
  RAE_CHECK(n > 0 && classes > 0, "Inception Score: need samples and classes (", n, " x ", classes,
            ")");
  RAE_CHECK(split_size > 0, "Inception Score: split size must be positive");
  for (int64_t i = 0; i < n * classes; ++i)
    RAE_CHECK(std::isfinite(logits[i]), "Inception Score: logit ", i % classes, " of sample ",
              i / classes, " is not finite");
  InceptionScore r;
  r.split_size = split_size;
  for (int64_t b = 0; b < n; b += split_size) {
    const int64_t rows = std::min(split_size, n - b);
    r.split_scores.push_back(split_score(logits + b * classes, rows, classes));
  }
  for (double s : r.split_scores) r.score += s;
  r.score /= static_cast<double>(r.split_scores.size());
  return r;
}

}  // namespace rae::eval
