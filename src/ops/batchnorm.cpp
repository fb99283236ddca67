// Dispatch and argument checks for batch normalisation (channels last).
#include "ops/batchnorm.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {

// x (..., C) and a same-shaped row-strided companion (out, dout, dx).
void check_x(const char* op, const Tensor& x) {
  check::is_float(x, op, "x");
  RAE_CHECK(x.ndim() >= 1, op, ": argument 'x' must have a channel dim, got ", x.str());
  check::rows(x, op, "x");
}
void check_like_x(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  check::like(t, x, op, name);
  check::shape(t, x.shape(), op, name);
  check::rows(t, op, name);
}
// An optional per-channel parameter (gamma, beta and their gradients): (C), x's dtype.
void check_param(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  if (!t.defined()) return;
  check::like(t, x, op, name);
  check::shape(t, {check::cols(x)}, op, name);
  check::contiguous(t, op, name);
}
// The rows split into `groups` equal groups of consecutive rows.
void check_groups(const char* op, const Tensor& x, int64_t groups) {
  RAE_CHECK(groups >= 1 && check::nrows(x) % groups == 0, op, ": groups = ", groups,
            " must be >= 1 and divide the ", check::nrows(x), " rows of x ", x.shape().str());
}
void check_eps(const char* op, double eps) {
  RAE_CHECK(eps > 0, op, ": eps must be > 0, got ", eps);
}

}  // namespace

void batchnorm_train_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var, double momentum,
                             double eps, int64_t groups) {
  const char* op = "batchnorm_train_forward";
  check_x(op, x);
  check_like_x(op, out, "out", x);
  const int64_t C = check::cols(x);
  check_groups(op, x, groups);
  check::stat(mean, x, groups * C, op, "mean");
  check::stat(rstd, x, groups * C, op, "rstd");
  check_param(op, gamma, "gamma", x);
  check_param(op, beta, "beta", x);
  RAE_CHECK(running_mean.defined() == running_var.defined(), op,
            ": pass both running_mean and running_var, or neither");
  RAE_CHECK(!running_mean.defined() || groups == 1, op,
            ": running statistics need groups = 1, got ", groups);
  if (running_mean.defined()) {
    check::stat(running_mean, x, C, op, "running_mean");
    check::stat(running_var, x, C, op, "running_var");
  }
  RAE_CHECK(momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ", momentum);
  check_eps(op, eps);
  RAE_CHECK(check::nrows(x) > groups, op,
            ": expected more than 1 value per channel and group when training, x is ",
            x.shape().str(), " in ", groups, " group(s)");
  RAE_DISPATCH(x, batchnorm_train_forward, out, mean, rstd, x, gamma, beta, running_mean,
               running_var, momentum, eps, groups);
}

void batchnorm_train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                              const Tensor& dout, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, int64_t groups) {
  const char* op = "batchnorm_train_backward";
  check_x(op, x);
  check_like_x(op, dout, "dout", x);
  const int64_t C = check::cols(x);
  check_groups(op, x, groups);
  check::stat(mean, x, groups * C, op, "mean");
  check::stat(rstd, x, groups * C, op, "rstd");
  check_param(op, gamma, "gamma", x);
  if (dx.defined()) check_like_x(op, dx, "dx", x);
  check_param(op, dgamma, "dgamma", x);
  check_param(op, dbeta, "dbeta", x);
  if (!dx.defined() && !dgamma.defined() && !dbeta.defined()) return;
  RAE_DISPATCH(x, batchnorm_train_backward, dx, dgamma, dbeta, dout, x, gamma, mean, rstd, groups);
}

void batchnorm_eval_forward(const Tensor& out, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  const char* op = "batchnorm_eval_forward";
  check_x(op, x);
  check_like_x(op, out, "out", x);
  const int64_t C = check::cols(x);
  check_param(op, gamma, "gamma", x);
  check_param(op, beta, "beta", x);
  check::stat(running_mean, x, C, op, "running_mean");
  check::stat(running_var, x, C, op, "running_var");
  check_eps(op, eps);
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, batchnorm_eval_forward, out, x, gamma, beta, running_mean, running_var, eps);
}

void batchnorm_eval_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                             const Tensor& dout, const Tensor& x, const Tensor& gamma,
                             const Tensor& running_mean, const Tensor& running_var, double eps) {
  const char* op = "batchnorm_eval_backward";
  check_x(op, x);
  check_like_x(op, dout, "dout", x);
  const int64_t C = check::cols(x);
  check_param(op, gamma, "gamma", x);
  check::stat(running_mean, x, C, op, "running_mean");
  check::stat(running_var, x, C, op, "running_var");
  check_eps(op, eps);
  if (dx.defined()) check_like_x(op, dx, "dx", x);
  check_param(op, dgamma, "dgamma", x);
  check_param(op, dbeta, "dbeta", x);
  if (!dx.defined() && !dgamma.defined() && !dbeta.defined()) return;
  if (x.numel() == 0) return;
  RAE_DISPATCH(x, batchnorm_eval_backward, dx, dgamma, dbeta, dout, x, gamma, running_mean,
               running_var, eps);
}

}  // namespace rae::ops
