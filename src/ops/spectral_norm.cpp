// Dispatch and argument checks for spectral normalisation.
#include "ops/spectral_norm.h"

#include <tuple>

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {

void check_weight(const char* op, const Tensor& t, const char* name, const Tensor* ref) {
  check::is_float(t, op, name);
  check::contiguous(t, op, name);
  RAE_CHECK(t.ndim() >= 2 && t.numel() > 0, op, ": argument '", name,
            "' must be a non-empty weight with an output dim, got ", t.str());
  if (ref) {
    check::like(t, *ref, op, name);
    check::shape(t, ref->shape(), op, name);
  }
}
// u (O), v (K), sigma (1): one dtype (F32, or F64 with F64 weights), w's device.
void check_buffers(const char* op, const Tensor& w, const Tensor& u, const Tensor& v,
                   const Tensor& sigma) {
  const int64_t O = w.dim(0), K = w.numel() / O;
  const DType dt = w.dtype() == DType::F64 ? DType::F64 : DType::F32;
  for (auto [t, name, n] : {std::tuple<const Tensor&, const char*, int64_t>{u, "u", O},
                            {v, "v", K},
                            {sigma, "sigma", 1}}) {
    check::defined(t, op, name);
    check::dtype(t, dt, op, name);
    check::same_device(t, w, op, name);
    check::contiguous(t, op, name);
    RAE_CHECK(t.numel() == n, op, ": argument '", name, "' has ", t.numel(), " elements, expected ",
              n, " for the weight ", w.str());
  }
}

}  // namespace

void spectral_norm_forward(const Tensor& w_sn, const Tensor& sigma, const Tensor& w,
                           const Tensor& u, const Tensor& v, int power_iterations, double eps) {
  const char* op = "spectral_norm_forward";
  check_weight(op, w, "w", nullptr);
  check_weight(op, w_sn, "w_sn", &w);
  check_buffers(op, w, u, v, sigma);
  RAE_CHECK(power_iterations >= 0, op, ": power_iterations must be >= 0, got ", power_iterations);
  RAE_CHECK(eps > 0, op, ": eps must be > 0, got ", eps);
  RAE_DISPATCH(w, spectral_norm_forward, w_sn, sigma, w, u, v, power_iterations, eps);
}

void spectral_norm_backward(const Tensor& dw, const Tensor& dw_sn, const Tensor& w, const Tensor& u,
                            const Tensor& v, const Tensor& sigma) {
  const char* op = "spectral_norm_backward";
  check_weight(op, w, "w", nullptr);
  check_weight(op, dw_sn, "dw_sn", &w);
  check_buffers(op, w, u, v, sigma);
  if (!dw.defined()) return;
  check_weight(op, dw, "dw", &w);
  RAE_DISPATCH(w, spectral_norm_backward, dw, dw_sn, w, u, v, sigma);
}

}  // namespace rae::ops
