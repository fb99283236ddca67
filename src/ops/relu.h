// Rectifiers: ReLU and LeakyReLU (the GAN discriminator's, slope 0.2), forward and backward.
// Elementwise over row-strided tensors; out may alias x (in place).
//   relu:        out = max(x, 0);              dx += dout * (x > 0)
//   leaky_relu:  out = x > 0 ? x : slope * x;  dx += dout * (x > 0 ? 1 : slope)
// (At x = 0 the gradient is 0 for ReLU and `slope` for LeakyReLU, as PyTorch.)
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

void relu_forward(const Tensor& out, const Tensor& x);
void relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x);
void leaky_relu_forward(const Tensor& out, const Tensor& x, double slope);
void leaky_relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double slope);

// The backends implement ReLU as LeakyReLU with slope 0 (identical values and gradients).
namespace cpu {
void leaky_relu_forward(const Tensor& out, const Tensor& x, double slope);
void leaky_relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double slope);
}  // namespace cpu
namespace cuda {
void leaky_relu_forward(const Tensor& out, const Tensor& x, double slope);
void leaky_relu_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double slope);
}  // namespace cuda

}  // namespace rae::ops
