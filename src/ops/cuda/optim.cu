// CUDA optimizer kernels over flat F32 buffers: fused AdamW (PyTorch semantics) and EMA.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/optim.h"
#include "ops/step_scalars.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

// One element of AdamW; the eager and the step-scalar kernels share it, so they compute the
// same floats from the same arguments.
__device__ __forceinline__ void adamw_element(float* p, const float* g, float* m, float* v,
                                              int64_t i, float lr, float b1, float b2, float eps,
                                              float decay_factor, float bc1, float bc2_sqrt_inv,
                                              float grad_scale) {
  float gi = g[i] * grad_scale;
  float pi = p[i] * decay_factor;  // decoupled weight decay first, as torch.optim.AdamW
  float mi = b1 * m[i] + (1.f - b1) * gi;
  float vi = b2 * v[i] + (1.f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  // p -= lr * (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
  pi -= (lr / bc1) * mi / (sqrtf(vi) * bc2_sqrt_inv + eps);
  p[i] = pi;
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr,
                             float b1, float b2, float eps, float decay_factor, float bc1,
                             float bc2_sqrt_inv, float grad_scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    adamw_element(p, g, m, v, i, lr, b1, b2, eps, decay_factor, bc1, bc2_sqrt_inv, grad_scale);
}

// The per-step values from the step scalars (ops/step_scalars.h), converted as the host converts
// them for adamw_kernel.
__global__ void adamw_scalars_kernel(float* p, const float* g, float* m, float* v, int64_t n,
                                     float b1, float b2, float eps, const double* s) {
  if (s[kSkip] != 0) return;
  const float lr = (float)s[kLr], decay = (float)s[kDecayFactor], bc1 = (float)s[kBiasCorr1],
              bc2si = (float)s[kBc2SqrtInv], gs = (float)s[kClipCoef];
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    adamw_element(p, g, m, v, i, lr, b1, b2, eps, decay, bc1, bc2si, gs);
}

__global__ void ema_scalars_kernel(float* ema, const float* p, int64_t n, float decay,
                                   const double* s) {
  if (s[kSkip] != 0) return;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    ema[i] = decay * ema[i] + (1.f - decay) * p[i];
}

// ops::clip_coefficient and the trainer's finiteness test, in double on the device.
__global__ void step_control_kernel(double* s, double max_norm) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const double norm = sqrt(s[kGradSumSq]);
  s[kClipCoef] = max_norm > 0 ? fmin(1.0, max_norm / (norm + 1e-6)) : 1.0;
  s[kSkip] = isfinite(s[kLoss]) && isfinite(norm) ? 0.0 : 1.0;
}

__global__ void ema_kernel(float* ema, const float* p, int64_t n, float decay) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    ema[i] = decay * ema[i] + (1.f - decay) * p[i];
}

}  // namespace

namespace {
// AdamW's F32 buffers, checked: the eager and the step-scalar launches take the same.
struct AdamBuffers {
  float *p, *m, *v;
  const float* g;
  int64_t n;
};
AdamBuffers adam_buffers(const char* op, const Tensor& param, const Tensor& grad, const Tensor& m,
                         const Tensor& v) {
  AdamBuffers b{f32_ptr(param, op, "param"), f32_ptr(m, op, "m"), f32_ptr(v, op, "v"),
                f32_ptr(grad, op, "grad"), param.numel()};
  require_numel(grad, b.n, op, "grad");
  require_numel(m, b.n, op, "m");
  require_numel(v, b.n, op, "v");
  return b;
}
}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p) {
  const char* op = "cuda::adamw_step";
  const AdamBuffers b = adam_buffers(op, param, grad, m, v);
  RAE_CHECK(p.step >= 1, op, ": step must be >= 1, got ", p.step);
  const int64_t n = b.n;
  if (n == 0) return;
  double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  adamw_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(
      b.p, b.g, b.m, b.v, n, (float)p.lr, (float)p.beta1, (float)p.beta2, (float)p.eps,
      (float)(1.0 - p.lr * p.weight_decay), (float)bc1, (float)(1.0 / std::sqrt(bc2)),
      (float)p.grad_scale);
  RAE_CUDA_LAUNCHED(op);
}

void ema_update(const Tensor& ema, const Tensor& param, double decay) {
  const char* op = "cuda::ema_update";
  float* ep = f32_ptr(ema, op, "ema");
  const float* pp = f32_ptr(param, op, "param");
  int64_t n = ema.numel();
  require_numel(param, n, op, "param");
  if (n == 0) return;
  ema_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ep, pp, n, (float)decay);
  RAE_CUDA_LAUNCHED(op);
}

void adamw_step_scalars(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const AdamWParams& p, const Tensor& s) {
  const char* op = "cuda::adamw_step_scalars";
  const AdamBuffers b = adam_buffers(op, param, grad, m, v);
  const int64_t n = b.n;
  if (n == 0) return;
  adamw_scalars_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(b.p, b.g, b.m, b.v, n, (float)p.beta1,
                                                             (float)p.beta2, (float)p.eps,
                                                             static_cast<const double*>(s.raw()));
  RAE_CUDA_LAUNCHED(op);
}

void ema_update_scalars(const Tensor& ema, const Tensor& param, double decay, const Tensor& s) {
  const char* op = "cuda::ema_update_scalars";
  float* ep = f32_ptr(ema, op, "ema");
  const float* pp = f32_ptr(param, op, "param");
  int64_t n = ema.numel();
  require_numel(param, n, op, "param");
  if (n == 0) return;
  ema_scalars_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ep, pp, n, (float)decay,
                                                           static_cast<const double*>(s.raw()));
  RAE_CUDA_LAUNCHED(op);
}

void step_control(const Tensor& s, double max_norm) {
  step_control_kernel<<<1, 32, 0, cur_stream()>>>(static_cast<double*>(s.raw()), max_norm);
  RAE_CUDA_LAUNCHED("cuda::step_control");
}

}  // namespace rae::ops::cuda
