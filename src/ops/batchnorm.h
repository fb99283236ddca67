// Batch normalisation, channels last: x (..., C) is read as rows (M, C) (M = N*H*W for NHWC,
// N*L for NLC, N for (N, C)); every statistic is per channel over all M rows of the call, i.e.
// over the LOCAL batch (the discriminator's BatchNorm, computed on each rank's batch).
//
// Training form (PyTorch's BatchNorm in train mode):
//   mean = sum_rows x / M, var = sum_rows (x - mean)^2 / M (biased), rstd = 1 / sqrt(var + eps)
//   out = (x - mean) * rstd * gamma + beta
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var + momentum var * M / (M - 1)   (unbiased; M > 1)
// Inference form: out = (x - running_mean) / sqrt(running_var + eps) * gamma + beta, which is
// the per-channel affine out = x * scale + shift that an inference network folds into the
// preceding convolution's weight and bias (models/inception.cpp does so at load time).
//
// Groups (training form): with groups = G the M rows are G consecutive groups of M / G rows,
// each normalised with its own statistics (mean/rstd (G, C)): the release's BatchNormLocal with
// virtual_bs = 1 (src/disc/dinodisc.py) normalises each sample's (L, C) tokens on their own, i.e.
// x (N, L, C) with groups = N. Running statistics need groups = 1.
// gamma/beta (C) are optional (undefined: affine=False); running_mean/running_var (C) are
// optional in the training form (undefined: not tracked). Saved mean/rstd and running
// statistics are F32, or F64 for F64 inputs (check::stat). x/out/dout/dx are row-strided.
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

void batchnorm_train_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var,
                             double momentum = 0.1, double eps = 1e-5, int64_t groups = 1);
// dx += gamma rstd / M (M dout - sum dout - xhat sum(dout xhat)), dgamma += sum dout xhat,
// dbeta += sum dout, with xhat = (x - mean) rstd from the saved statistics (per group: M, the
// sums and the statistics are the group's).
void batchnorm_train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                              const Tensor& dout, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, int64_t groups = 1);

void batchnorm_eval_forward(const Tensor& out, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, double eps = 1e-5);
// dx += dout gamma / sqrt(running_var + eps), dgamma += sum dout xhat, dbeta += sum dout.
void batchnorm_eval_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                             const Tensor& dout, const Tensor& x, const Tensor& gamma,
                             const Tensor& running_mean, const Tensor& running_var,
                             double eps = 1e-5);

namespace cpu {
void batchnorm_train_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var, double momentum,
                             double eps, int64_t groups);
void batchnorm_train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                              const Tensor& dout, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, int64_t groups);
void batchnorm_eval_forward(const Tensor& out, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, double eps);
void batchnorm_eval_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                             const Tensor& dout, const Tensor& x, const Tensor& gamma,
                             const Tensor& running_mean, const Tensor& running_var, double eps);
}  // namespace cpu
namespace cuda {
void batchnorm_train_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var, double momentum,
                             double eps, int64_t groups);
void batchnorm_train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                              const Tensor& dout, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, int64_t groups);
void batchnorm_eval_forward(const Tensor& out, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, double eps);
void batchnorm_eval_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                             const Tensor& dout, const Tensor& x, const Tensor& gamma,
                             const Tensor& running_mean, const Tensor& running_var, double eps);
}  // namespace cuda

}  // namespace rae::ops
