// CUDA optimizer kernels over flat F32 buffers: fused AdamW (PyTorch semantics) and EMA.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/optim.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr,
                             float b1, float b2, float eps, float decay_factor, float bc1,
                             float bc2_sqrt_inv, float grad_scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
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
}

__global__ void ema_kernel(float* ema, const float* p, int64_t n, float decay) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    ema[i] = decay * ema[i] + (1.f - decay) * p[i];
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p) {
  const char* op = "cuda::adamw_step";
  float* pp = f32_ptr(param, op, "param");
  const float* gp = f32_ptr(grad, op, "grad");
  float* mp = f32_ptr(m, op, "m");
  float* vp = f32_ptr(v, op, "v");
  int64_t n = param.numel();
  require_numel(grad, n, op, "grad");
  require_numel(m, n, op, "m");
  require_numel(v, n, op, "v");
  RAE_CHECK(p.step >= 1, op, ": step must be >= 1, got ", p.step);
  if (n == 0) return;
  double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  adamw_kernel<<<grid_1d(n), 256>>>(pp, gp, mp, vp, n, (float)p.lr, (float)p.beta1, (float)p.beta2,
                                    (float)p.eps, (float)(1.0 - p.lr * p.weight_decay), (float)bc1,
                                    (float)(1.0 / std::sqrt(bc2)), (float)p.grad_scale);
  RAE_CUDA_LAUNCHED(op);
}

void ema_update(const Tensor& ema, const Tensor& param, double decay) {
  const char* op = "cuda::ema_update";
  float* ep = f32_ptr(ema, op, "ema");
  const float* pp = f32_ptr(param, op, "param");
  int64_t n = ema.numel();
  require_numel(param, n, op, "param");
  if (n == 0) return;
  ema_kernel<<<grid_1d(n), 256>>>(ep, pp, n, (float)decay);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
