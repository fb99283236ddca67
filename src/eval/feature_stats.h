// Mean and covariance of feature vectors in float64, as the FID statistics need them.
//
// FeatureMoments keeps (count, mean, M2) where M2 = sum over samples of (x - mean)(x - mean)^T,
// the co-moment matrix. add() takes a block of rows in two passes (the block's exact mean, then
// its centred co-moment by BLAS dsyrk) and folds it in with Chan et al.'s pairwise update
//   M2 = M2_a + M2_b + d d^T * n_a n_b / n,   mean = mean_a + d * n_b / n,   d = mean_b - mean_a,
// which is exact in real arithmetic and, unlike a textbook one-pass sum of x x^T, loses no digits
// to cancellation when the mean is large against the spread. merge() applies the same update to
// moments from another rank; merging ranks' moments in rank order makes the result depend only
// on rounding (tests: 1 vs 3 ranks agree to 1e-12 relative).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::eval {

// A Gaussian's parameters as FID uses them: mean and the unbiased (N - 1) covariance, as
// numpy.cov(x, rowvar=False) computes it in the ADM evaluator and torch-fidelity.
struct GaussianStats {
  int64_t dim = 0;
  int64_t count = 0;          // samples behind the estimate (0 when read from a file)
  std::vector<double> mu;     // (dim)
  std::vector<double> sigma;  // (dim, dim) row-major, symmetric
};

class FeatureMoments {
 public:
  FeatureMoments() = default;
  explicit FeatureMoments(int64_t dim);

  int64_t dim() const { return dim_; }
  int64_t count() const { return count_; }
  const std::vector<double>& mean() const { return mean_; }

  // Adds n rows of `dim()` contiguous floats: (n, dim).
  void add(const float* rows, int64_t n);
  void add(const Tensor& rows);  // (n, dim) F32 or F64, CPU, contiguous
  void merge(const FeatureMoments& other);

  // Mean and the covariance M2 / (count - 1); needs count >= 2.
  GaussianStats gaussian() const;

  // Flat F64 tensor [count, mean (dim), M2 upper triangle row by row] for collectives, and back.
  Tensor pack() const;
  static FeatureMoments unpack(const Tensor& packed, int64_t dim);
  static int64_t packed_size(int64_t dim) { return 1 + dim + dim * (dim + 1) / 2; }

 private:
  template <typename T>
  void add_rows(const T* rows, int64_t n);
  void merge_moments(int64_t n_b, const std::vector<double>& mean_b,
                     const std::vector<double>& m2_b);

  int64_t dim_ = 0;
  int64_t count_ = 0;
  std::vector<double> mean_;
  std::vector<double> m2_;  // (dim, dim) row-major, upper triangle valid
};

}  // namespace rae::eval
