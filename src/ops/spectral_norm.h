// Spectral normalisation of a weight, as torch.nn.utils.spectral_norm (dim = 0, the release's
// SpectralConv1d with n_power_iterations = 1, eps = 1e-12): the weight seen as a matrix W (O, K)
// (rows = output channels; any column order: our channels-last (O, k, C) conv weight is
// PyTorch's (O, C, k) with permuted columns, which leaves u and sigma unchanged and permutes v),
// and the buffers u (O), v (K):
//
//   forward, power_iterations = n (training: 1; eval: 0):
//     n times: v = normalize(W^T u), u = normalize(W v)       (u, v updated in place)
//     sigma = u . (W v);  w_sn = W / sigma
//   with normalize(t) = t / max(||t||, eps).
//   backward (u, v constants, as PyTorch computes them without grad):
//     dW += dW_sn / sigma - (sum(dW_sn * W) / sigma^2) u v^T
//
// w, w_sn, dw, dw_sn contiguous with w's shape; u, v contiguous buffers (F32; F64 in F64 runs);
// sigma a (1) tensor of u's dtype, written by forward and read by backward (it stays on the
// device: no host round trip). CPU sums in double; CUDA runs one block per call (the matrices
// are the discriminator heads', about 384 x 3456).
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

void spectral_norm_forward(const Tensor& w_sn, const Tensor& sigma, const Tensor& w,
                           const Tensor& u, const Tensor& v, int power_iterations,
                           double eps = 1e-12);
void spectral_norm_backward(const Tensor& dw, const Tensor& dw_sn, const Tensor& w, const Tensor& u,
                            const Tensor& v, const Tensor& sigma);

namespace cpu {
void spectral_norm_forward(const Tensor& w_sn, const Tensor& sigma, const Tensor& w,
                           const Tensor& u, const Tensor& v, int power_iterations, double eps);
void spectral_norm_backward(const Tensor& dw, const Tensor& dw_sn, const Tensor& w, const Tensor& u,
                            const Tensor& v, const Tensor& sigma);
}  // namespace cpu
namespace cuda {
void spectral_norm_forward(const Tensor& w_sn, const Tensor& sigma, const Tensor& w,
                           const Tensor& u, const Tensor& v, int power_iterations, double eps);
void spectral_norm_backward(const Tensor& dw, const Tensor& dw_sn, const Tensor& w, const Tensor& u,
                            const Tensor& v, const Tensor& sigma);
}  // namespace cuda

}  // namespace rae::ops
