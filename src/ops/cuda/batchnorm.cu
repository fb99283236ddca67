// CUDA batch normalisation over rows of channels (channels last), F32 math on F32/BF16 data.
// Per-channel sums use the deterministic, atomic-free column reduction of common.cuh (fixed
// row chunks added in order), so statistics and gradients repeat bit for bit. The training
// statistics take two passes (mean, then centred squares), as the CPU backend. With groups, the
// statistics are (G, C): row n belongs to group n / R (R rows per group).
#include "ops/batchnorm.h"
#include "ops/cuda/common.cuh"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

struct SumX {
  Ptr x;
  int64_t C;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const { acc[0] += x.ld2(n, c, C); }
};
struct SumCentredSq {
  Ptr x;
  const float* mean;
  int64_t C, R;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    const float d = x.ld2(n, c, C) - mean[(n / R) * C + c];
    acc[0] += d * d;
  }
};
// acc[0] += dout, acc[1] += dout * (x - mu) * rs with per-channel mu, rs (F32 scratch).
struct SumGrads {
  Ptr dy, x;
  const float *mu, *rs;
  int64_t C, R;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    const float g = dy.ld2(n, c, C);
    const int64_t s = (n / R) * C + c;
    acc[0] += g;
    acc[1] += g * (x.ld2(n, c, C) - mu[s]) * rs[s];
  }
};

__device__ __forceinline__ float param_or(Ptr p, int64_t c, float fallback) {
  return p.valid() ? p.ld(c) : fallback;
}

// Per (group, channel) i: mean, rstd, running statistics (one group), and the affine (a, b) of
// out = x a + b. M: rows per group.
__global__ void train_stats_kernel(const float* sum, const float* sq, int64_t M, int64_t GC,
                                   int64_t C, double momentum, double eps, Ptr mean, Ptr rstd,
                                   Ptr gamma, Ptr beta, Ptr running_mean, Ptr running_var, float* a,
                                   float* b) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < GC;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C;
    const float mu = sum[i] / static_cast<float>(M);
    const float var = sq[i] / static_cast<float>(M);
    const float rs = rsqrtf(var + static_cast<float>(eps));
    mean.st(i, mu);
    rstd.st(i, rs);
    a[i] = rs * param_or(gamma, c, 1.f);
    b[i] = param_or(beta, c, 0.f) - mu * a[i];
    if (running_mean.valid()) {
      const float m = static_cast<float>(momentum);
      running_mean.st(c, (1.f - m) * running_mean.ld(c) + m * mu);
      running_var.st(c, (1.f - m) * running_var.ld(c) + m * sq[c] / static_cast<float>(M - 1));
    }
  }
}

__global__ void mean_kernel(const float* sum, int64_t M, int64_t C, float* mu) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C;
       c += (int64_t)gridDim.x * blockDim.x)
    mu[c] = sum[c] / static_cast<float>(M);
}

__global__ void affine_kernel(Ptr out, Ptr x, const float* a, const float* b, int64_t M, int64_t C,
                              int64_t R) {
  RAE_ROW_LOOP(r, c, M, C) {
    const int64_t s = (r / R) * C + c;
    out.st2(r, c, C, x.ld2(r, c, C) * a[s] + b[s]);
  }
}

// out = (x - rm) rsqrt(rv + eps) gamma + beta.
__global__ void eval_kernel(Ptr out, Ptr x, Ptr gamma, Ptr beta, Ptr rm, Ptr rv, float eps,
                            int64_t M, int64_t C) {
  RAE_ROW_LOOP(r, c, M, C) {
    const float s = rsqrtf(rv.ld(c) + eps) * param_or(gamma, c, 1.f);
    out.st2(r, c, C, (x.ld2(r, c, C) - rm.ld(c)) * s + param_or(beta, c, 0.f));
  }
}

// Per-channel mu/rs for the gradient sums: the saved statistics, or the running ones.
__global__ void eval_stats_kernel(Ptr rm, Ptr rv, float eps, int64_t C, float* mu, float* rs) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C;
       c += (int64_t)gridDim.x * blockDim.x) {
    mu[c] = rm.ld(c);
    rs[c] = rsqrtf(rv.ld(c) + eps);
  }
}
__global__ void copy_stats_kernel(Ptr mean, Ptr rstd, int64_t C, float* mu, float* rs) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C;
       c += (int64_t)gridDim.x * blockDim.x) {
    mu[c] = mean.ld(c);
    rs[c] = rstd.ld(c);
  }
}

// dgamma += sum over groups of s1[g, c], dbeta += sum of s0[g, c] (groups in order).
__global__ void param_grads_kernel(Ptr dgamma, Ptr dbeta, const float* s0, const float* s1,
                                   int64_t C, int64_t G) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C;
       c += (int64_t)gridDim.x * blockDim.x) {
    float a0 = 0.f, a1 = 0.f;
    for (int64_t g = 0; g < G; ++g) {
      a0 += s0[g * C + c];
      a1 += s1[g * C + c];
    }
    if (dgamma.valid()) dgamma.add(c, a1);
    if (dbeta.valid()) dbeta.add(c, a0);
  }
}

// Training: dx += gamma rs (dy - s0 / M - xhat s1 / M). Eval (train = false): dx += gamma rs dy.
// R: rows per group (= M without groups).
__global__ void dx_kernel(Ptr dx, Ptr dy, Ptr x, Ptr gamma, const float* mu, const float* rs,
                          const float* s0, const float* s1, int64_t M, int64_t C, int64_t R,
                          bool train) {
  const float inv_m = 1.f / static_cast<float>(R);
  RAE_ROW_LOOP(r, c, M, C) {
    const int64_t s = (r / R) * C + c;
    const float k = param_or(gamma, c, 1.f) * rs[s];
    float g = dy.ld2(r, c, C);
    if (train) {
      const float xhat = (x.ld2(r, c, C) - mu[s]) * rs[s];
      g = g - s0[s] * inv_m - xhat * s1[s] * inv_m;
    }
    dx.add2(r, c, C, k * g);
  }
}

Tensor f32_zeros(int64_t n) {
  return Tensor::zeros({n}, DType::F32, Device::cuda(current_device()));
}
float* fp(const Tensor& t) {
  return static_cast<float*>(t.raw());
}

// The gradient sums (s0 = sum dy, s1 = sum dy xhat) and the parameter gradients.
// Per group (G groups of consecutive rows; s0, s1 (G, C)).
void grad_sums(const char* op, const Tensor& dout, const Tensor& x, const float* mu,
               const float* rs, const Tensor& dgamma, const Tensor& dbeta, Tensor* s0, Tensor* s1,
               int64_t G = 1) {
  const int64_t C = last_dim(x), M = x.numel() / C, R = M / G;
  *s0 = f32_zeros(G * C);
  *s1 = f32_zeros(G * C);
  col_reduce<2>(SumGrads{ptr(dout, op, "dout"), ptr(x, op, "x"), mu, rs, C, R}, G, R, C,
                Ptr{s0->raw(), kF32, 1, 1}, Ptr{s1->raw(), kF32, 1, 1});
  if (dgamma.defined() || dbeta.defined()) {
    param_grads_kernel<<<grid_1d(C), 256, 0, cur_stream()>>>(
        ptr(dgamma, op, "dgamma"), ptr(dbeta, op, "dbeta"), fp(*s0), fp(*s1), C, G);
    RAE_CUDA_LAUNCHED(op);
  }
}

}  // namespace

void batchnorm_train_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var, double momentum,
                             double eps, int64_t groups) {
  const char* op = "cuda::batchnorm_train_forward";
  const int64_t C = last_dim(x), M = x.numel() / C, G = groups, R = M / G;
  Ptr xp = ptr(x, op, "x");
  Tensor sum = f32_zeros(G * C), sq = f32_zeros(G * C), a = f32_zeros(G * C), b = f32_zeros(G * C);
  col_reduce<1>(SumX{xp, C}, G, R, C, Ptr{sum.raw(), kF32, 1, 1});
  // The mean first, so the second pass sums squares centred on it.
  Tensor mu = f32_zeros(G * C);
  mean_kernel<<<grid_1d(G * C), 256, 0, cur_stream()>>>(fp(sum), R, G * C, fp(mu));
  RAE_CUDA_LAUNCHED(op);
  col_reduce<1>(SumCentredSq{xp, fp(mu), C, R}, G, R, C, Ptr{sq.raw(), kF32, 1, 1});
  train_stats_kernel<<<grid_1d(G * C), 256, 0, cur_stream()>>>(
      fp(sum), fp(sq), R, G * C, C, momentum, eps, ptr(mean, op, "mean"), ptr(rstd, op, "rstd"),
      ptr(gamma, op, "gamma"), ptr(beta, op, "beta"), ptr(running_mean, op, "running_mean"),
      ptr(running_var, op, "running_var"), fp(a), fp(b));
  RAE_CUDA_LAUNCHED(op);
  affine_kernel<<<grid_rows(M), threads_for_cols(C), 0, cur_stream()>>>(ptr(out, op, "out"), xp,
                                                                        fp(a), fp(b), M, C, R);
  RAE_CUDA_LAUNCHED(op);
}

void batchnorm_train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                              const Tensor& dout, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, int64_t groups) {
  const char* op = "cuda::batchnorm_train_backward";
  const int64_t C = last_dim(x), M = x.numel() / C, G = groups;
  Tensor mu = f32_zeros(G * C), rs = f32_zeros(G * C);
  copy_stats_kernel<<<grid_1d(G * C), 256, 0, cur_stream()>>>(
      ptr(mean, op, "mean"), ptr(rstd, op, "rstd"), G * C, fp(mu), fp(rs));
  RAE_CUDA_LAUNCHED(op);
  Tensor s0, s1;
  grad_sums(op, dout, x, fp(mu), fp(rs), dgamma, dbeta, &s0, &s1, G);
  if (!dx.defined()) return;
  dx_kernel<<<grid_rows(M), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(x, op, "x"), ptr(gamma, op, "gamma"), fp(mu),
      fp(rs), fp(s0), fp(s1), M, C, M / G, true);
  RAE_CUDA_LAUNCHED(op);
}

void batchnorm_eval_forward(const Tensor& out, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  const char* op = "cuda::batchnorm_eval_forward";
  const int64_t C = last_dim(x), M = x.numel() / C;
  eval_kernel<<<grid_rows(M), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), ptr(gamma, op, "gamma"), ptr(beta, op, "beta"),
      ptr(running_mean, op, "running_mean"), ptr(running_var, op, "running_var"),
      static_cast<float>(eps), M, C);
  RAE_CUDA_LAUNCHED(op);
}

void batchnorm_eval_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                             const Tensor& dout, const Tensor& x, const Tensor& gamma,
                             const Tensor& running_mean, const Tensor& running_var, double eps) {
  const char* op = "cuda::batchnorm_eval_backward";
  const int64_t C = last_dim(x), M = x.numel() / C;
  Tensor mu = f32_zeros(C), rs = f32_zeros(C);
  eval_stats_kernel<<<grid_1d(C), 256, 0, cur_stream()>>>(
      ptr(running_mean, op, "running_mean"), ptr(running_var, op, "running_var"),
      static_cast<float>(eps), C, fp(mu), fp(rs));
  RAE_CUDA_LAUNCHED(op);
  Tensor s0, s1;
  if (dgamma.defined() || dbeta.defined())
    grad_sums(op, dout, x, fp(mu), fp(rs), dgamma, dbeta, &s0, &s1);
  if (!dx.defined()) return;
  dx_kernel<<<grid_rows(M), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(x, op, "x"), ptr(gamma, op, "gamma"), fp(mu),
      fp(rs), nullptr, nullptr, M, C, M, false);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
