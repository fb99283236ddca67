// Improved precision and recall (Kynkäänniemi et al. 2019) with the ADM evaluator's k-NN
// manifold estimator (ManifoldEstimator, nhood_sizes = (3,)):
// - radii: for every feature vector x_i of a set, r_i = the (k+1)-th smallest squared Euclidean
//   distance from x_i to all vectors of the same set, itself included (so the k-th nearest other
//   vector when x_i is distinct);
// - precision = the fraction of sample vectors within r_j of some reference vector y_j
//   (d(x, y_j) <= r_j); recall = the fraction of reference vectors within r_i of some sample x_i.
// Distances are |u|^2 - 2 u.v + |v|^2 clamped at 0 in float32 (ADM: float16 first, float32 when
// float16 overflows; we skip the float16 step, which only adds noise to borderline comparisons).
// The work is cut into fixed blocks of rows x columns (a dot-product GEMM per block, then the
// reductions of eval/pairwise.h), so each pair's distance is computed the same way whichever rank
// does the block: results do not depend on the rank count.
#pragma once
#include <cstdint>
#include <vector>

#include "core/device.h"
#include "distributed/communicator.h"
#include "tensor/tensor.h"

namespace rae::eval {

struct ManifoldOptions {
  int k = 3;                                  // ADM: nhood_sizes = (3,)
  Device device = Device::cpu();              // where GEMMs and reductions run
  distributed::Communicator* comm = nullptr;  // splits row blocks over ranks; null: one process
  // Block sizes (0: the device's default). Fixed for a run: they decide the GEMM shapes.
  int64_t row_block = 0, col_block = 0;
};

struct PrecisionRecall {
  double precision = 0, recall = 0;
  int64_t samples = 0, reference = 0;
};

// Features are (n, d) F32 CPU tensors, identical on every rank of `comm`.
std::vector<float> manifold_radii(const Tensor& features, const ManifoldOptions& opts);
PrecisionRecall evaluate_pr(const Tensor& reference, const std::vector<float>& reference_radii,
                            const Tensor& samples, const std::vector<float>& sample_radii,
                            const ManifoldOptions& opts);
PrecisionRecall precision_recall(const Tensor& reference, const Tensor& samples,
                                 const ManifoldOptions& opts);

}  // namespace rae::eval
