// Row-wise reductions over blocks of pairwise squared Euclidean distances, the inner loops of the
// k-NN manifold estimator (precision_recall.h). A block is given by its dot products
// G = U V^T (rows x cols, F32, from ops::matmul) and the rows' squared norms; the distance is
//   d_ij = max((|u_i|^2 - 2 G_ij) + |v_j|^2, 0)
// in float32, in the ADM evaluator's order of operations (its _batch_pairwise_distances).
// CPU and CUDA implementations side by side; tests/eval checks that they agree exactly.
#pragma once
#include "tensor/tensor.h"

namespace rae::eval::pairwise {

constexpr int kMaxSmallest = 8;  // k + 1 <= this

// state (rows, k1) F32, ascending: the k1 smallest distances of each row seen so far (initially
// +inf); merged with this block's distances. row_norms (rows) F32, col_norms (cols) F32.
void update_smallest(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                     const Tensor& state);

// row_flags (rows) I32: set to 1 where some column j has d_ij <= col_radii_j;
// col_flags (cols) I32: set to 1 where some row i has d_ij <= row_radii_i. Flags only go 0 -> 1,
// so the result does not depend on the order in which blocks or threads run.
void update_within(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                   const Tensor& row_radii, const Tensor& col_radii, const Tensor& row_flags,
                   const Tensor& col_flags);

namespace cpu {
void update_smallest(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                     const Tensor& state);
void update_within(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                   const Tensor& row_radii, const Tensor& col_radii, const Tensor& row_flags,
                   const Tensor& col_flags);
}  // namespace cpu
namespace cuda {
void update_smallest(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                     const Tensor& state);
void update_within(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                   const Tensor& row_radii, const Tensor& col_radii, const Tensor& row_flags,
                   const Tensor& col_flags);
}  // namespace cuda

}  // namespace rae::eval::pairwise
