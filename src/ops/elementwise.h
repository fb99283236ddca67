// Elementwise helpers, reductions, the MSE loss and the flow-matching interpolation.
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

void add_(const Tensor& y, const Tensor& x, double alpha = 1.0);  // y += alpha * x
void scale_(const Tensor& x, double alpha);                       // x *= alpha
void add(const Tensor& out, const Tensor& a, const Tensor& b);    // out = a + b
// out (N, C) = x (N, C) + row broadcast over rows: row (C), or a table (R, C) with N % R == 0
// whose row i % R is added to row i (a (T, C) position embedding over x (B*T, C)).
void add_rowwise(const Tensor& out, const Tensor& x, const Tensor& row);
// Backward of add_rowwise for `row`: drow (C) += sum over rows of dout (N, C); for a table
// drow (R, C), row r += sum of dout's rows i with i % R == r.
void add_rowwise_backward(const Tensor& drow, const Tensor& dout);
double sum_squares(const Tensor& x);                               // in double
bool all_finite(const Tensor& x);

// MSE over all elements: returns mean((pred - target)^2) in double.
double mse_forward(const Tensor& pred, const Tensor& target);
// dpred += scale * 2 * (pred - target) / numel.
void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale = 1.0);

// Flow matching path per sample: x (B, ...), eps (B, ...), t (B) F32:
// xt = (1 - t) * x + t * eps; target = eps - x.
void flow_interpolate(const Tensor& xt, const Tensor& target, const Tensor& x, const Tensor& eps,
                      const Tensor& t);

namespace cpu {
void add_(const Tensor& y, const Tensor& x, double alpha);
void scale_(const Tensor& x, double alpha);
void add(const Tensor& out, const Tensor& a, const Tensor& b);
void add_rowwise(const Tensor& out, const Tensor& x, const Tensor& row);
void add_rowwise_backward(const Tensor& drow, const Tensor& dout);
double sum_squares(const Tensor& x);
bool all_finite(const Tensor& x);
double mse_forward(const Tensor& pred, const Tensor& target);
void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale);
void flow_interpolate(const Tensor& xt, const Tensor& target, const Tensor& x, const Tensor& eps,
                      const Tensor& t);
}  // namespace cpu
namespace cuda {
void add_(const Tensor& y, const Tensor& x, double alpha);
void scale_(const Tensor& x, double alpha);
void add(const Tensor& out, const Tensor& a, const Tensor& b);
void add_rowwise(const Tensor& out, const Tensor& x, const Tensor& row);
void add_rowwise_backward(const Tensor& drow, const Tensor& dout);
double sum_squares(const Tensor& x);
bool all_finite(const Tensor& x);
double mse_forward(const Tensor& pred, const Tensor& target);
void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale);
void flow_interpolate(const Tensor& xt, const Tensor& target, const Tensor& x, const Tensor& eps,
                      const Tensor& t);
}  // namespace cuda

}  // namespace rae::ops
