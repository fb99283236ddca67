// Inception Score as the ADM evaluator computes it (Evaluator.compute_inception_score):
// p = softmax(logits) per sample, where the logits are the pool features times the classifier's
// weight without its bias (TF graph `softmax/logits/MatMul`; torch-fidelity's `logits_unbiased`);
// the samples, in order, are cut into consecutive splits of `split_size` = 5000 (the last one may
// be shorter: 50,000 samples give the suite's 10 splits); per split
//   IS_s = exp(mean_i sum_c p_ic (log p_ic - log q_c)),  q = mean_i p_i (the split's marginal);
// the score is the mean of IS_s over the splits. We compute in float64 (ADM: float32), with
// log p = z - logsumexp(z) so that p -> 0 contributes 0 (ADM would give NaN on an exact 0).
#pragma once
#include <cstdint>
#include <vector>

namespace rae::eval {

struct InceptionScore {
  double score = 0;  // mean over splits (the reported IS)
  std::vector<double> split_scores;
  int64_t split_size = 0;
};

constexpr int64_t kAdmIsSplitSize = 5000;

// logits: (n, classes) row-major.
InceptionScore inception_score(const float* logits, int64_t n, int64_t classes,
                               int64_t split_size = kAdmIsSplitSize);

}  // namespace rae::eval
