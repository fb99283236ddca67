// GEMM and the linear layer.
#pragma once
#include "ops/grad_mode.h"
#include "tensor/tensor.h"

namespace rae::ops {

// C = alpha * op(A) @ op(B) + beta * C. 2-D (M,K)@(K,N)->(M,N), or 3-D batched with equal
// leading batch dims. op(X) = X^T when trans_X. Row-major, contiguous.
void matmul(const Tensor& C, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b,
            double alpha = 1.0, double beta = 0.0);

// out (N, O) = x (N, I) @ w (O, I)^T + b (O). `b` may be undefined.
void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b);
// Accumulates: dx (N, I) += dout @ w; dw (O, I) += dout^T @ x; db (O) += sum_rows(dout).
// GradMode::Overwrite: dx = dout @ w (dw and db still accumulate).
void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, GradMode mode = GradMode::Accumulate);

namespace cpu {
void matmul(const Tensor& C, const Tensor& A, const Tensor& B, bool ta, bool tb, double alpha,
            double beta);
void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, GradMode mode = GradMode::Accumulate);
}  // namespace cpu
namespace cuda {
void matmul(const Tensor& C, const Tensor& A, const Tensor& B, bool ta, bool tb, double alpha,
            double beta);
void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, GradMode mode = GradMode::Accumulate);
}  // namespace cuda

}  // namespace rae::ops
