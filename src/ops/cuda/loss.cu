// CUDA stage-1 losses: F32 math on F32/BF16 data, scalar results summed in double through the
// deterministic device_sum (reduce.cuh); LPIPS rows run one warp per row.
#include "ops/cuda/reduce.cuh"
#include "ops/loss.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

struct AbsDiff {
  Ptr a, b;
  __device__ double operator()(int64_t i) const { return fabs((double)a.ld(i) - b.ld(i)); }
};
struct Hinge {
  Ptr x;
  double sign;
  __device__ double operator()(int64_t i) const {
    const double v = 1.0 + sign * x.ld(i);
    return v > 0 ? v : 0.0;
  }
};
struct Value {
  Ptr x;
  __device__ double operator()(int64_t i) const { return x.ld(i); }
};
struct Greater {
  Ptr a, b;
  __device__ double operator()(int64_t i) const { return a.ld(i) > b.ld(i) ? 1.0 : 0.0; }
};
struct RowValue {
  const float* d;
  __device__ double operator()(int64_t i) const { return d[i]; }
};

__global__ void l1_bwd_kernel(Ptr d, Ptr p, Ptr t, float k, int64_t n) {
  RAE_GRID_LOOP(i, n) {
    const float v = p.ld(i) - t.ld(i);
    if (v != 0.f) d.add(i, v > 0.f ? k : -k);
  }
}
__global__ void hinge_bwd_kernel(Ptr d, Ptr x, float sign, float k, int64_t n) {
  RAE_GRID_LOOP(i, n) {
    if (1.f + sign * x.ld(i) > 0.f) d.add(i, k);
  }
}
__global__ void const_add_kernel(Ptr d, float k, int64_t n) {
  RAE_GRID_LOOP(i, n) d.add(i, k);
}

// Per row (one warp): the squared norms of fx and fy, lane-strided over C.
__device__ void row_norms(Ptr fx, Ptr fy, int64_t r, int64_t C, float* rx, float* ry) {
  float sx = 0.f, sy = 0.f;
  for (int64_t c = threadIdx.x & 31; c < C; c += 32) {
    const float a = fx.ld(r * C + c), b = fy.ld(r * C + c);
    sx += a * a;
    sy += b * b;
  }
  *rx = sqrtf(warp_sum(sx));
  *ry = sqrtf(warp_sum(sy));
}

// d[r] = sum_c w_c (fx/(rx+eps) - fy/(ry+eps))^2, one warp per row.
__global__ void lpips_rows_kernel(Ptr fx, Ptr fy, Ptr w, float eps, int64_t M, int64_t C,
                                  float* d) {
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); r < M;
       r += warps) {
    float rx, ry;
    row_norms(fx, fy, r, C, &rx, &ry);
    const float ax = 1.f / (rx + eps), ay = 1.f / (ry + eps);
    float s = 0.f;
    for (int64_t c = threadIdx.x & 31; c < C; c += 32) {
      const float v = fx.ld(r * C + c) * ax - fy.ld(r * C + c) * ay;
      s += w.ld(c) * v * v;
    }
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) d[r] = s;
  }
}

__global__ void lpips_bwd_kernel(Ptr dfx, Ptr fx, Ptr fy, Ptr w, float eps, float k, int64_t M,
                                 int64_t C) {
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); r < M;
       r += warps) {
    float rx, ry;
    row_norms(fx, fy, r, C, &rx, &ry);
    const float ax = 1.f / (rx + eps), ay = 1.f / (ry + eps);
    float gf = 0.f;
    for (int64_t c = threadIdx.x & 31; c < C; c += 32) {
      const float x = fx.ld(r * C + c);
      const float g = k * w.ld(c) * (x * ax - fy.ld(r * C + c) * ay);
      gf += g * x;
    }
    gf = warp_sum(gf);
    const float b = rx > 0.f ? gf * ax * ax / rx : 0.f;
    for (int64_t c = threadIdx.x & 31; c < C; c += 32) {
      const float x = fx.ld(r * C + c);
      const float g = k * w.ld(c) * (x * ax - fy.ld(r * C + c) * ay);
      dfx.add(r * C + c, g * ax - x * b);
    }
  }
}

int warp_grid(int64_t rows) {
  const int64_t blocks = (rows + 7) / 8;  // 8 warps of 256 threads
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535));
}

}  // namespace

double l1_forward(const Tensor& pred, const Tensor& target) {
  const char* op = "cuda::l1_forward";
  AbsDiff f{ptr(pred, op, "pred"), ptr(target, op, "target")};
  return device_sum(f, pred.numel(), op) / static_cast<double>(pred.numel());
}

void l1_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale) {
  const char* op = "cuda::l1_backward";
  const int64_t n = pred.numel();
  l1_bwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(
      ptr(dpred, op, "dpred"), ptr(pred, op, "pred"), ptr(target, op, "target"),
      static_cast<float>(scale / static_cast<double>(n)), n);
  RAE_CUDA_LAUNCHED(op);
}

double hinge_forward(const Tensor& x, double sign) {
  const char* op = "cuda::hinge_forward";
  return device_sum(Hinge{ptr(x, op, "x"), sign}, x.numel(), op) / static_cast<double>(x.numel());
}

void hinge_backward(const Tensor& dx, const Tensor& x, double sign, double scale) {
  const char* op = "cuda::hinge_backward";
  const int64_t n = x.numel();
  hinge_bwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(x, op, "x"), static_cast<float>(sign),
      static_cast<float>(sign * scale / static_cast<double>(n)), n);
  RAE_CUDA_LAUNCHED(op);
}

double mean_forward(const Tensor& x) {
  const char* op = "cuda::mean_forward";
  return device_sum(Value{ptr(x, op, "x")}, x.numel(), op) / static_cast<double>(x.numel());
}

void mean_backward(const Tensor& dx, double scale) {
  const char* op = "cuda::mean_backward";
  const int64_t n = dx.numel();
  const_add_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), static_cast<float>(scale / static_cast<double>(n)), n);
  RAE_CUDA_LAUNCHED(op);
}

int64_t count_greater(const Tensor& a, const Tensor& b) {
  const char* op = "cuda::count_greater";
  return static_cast<int64_t>(device_sum(Greater{ptr(a, op, "a"), ptr(b, op, "b")}, a.numel(), op));
}

double lpips_distance_forward(const Tensor& fx, const Tensor& fy, const Tensor& w, double eps) {
  const char* op = "cuda::lpips_distance_forward";
  const int64_t C = last_dim(fx), M = fx.numel() / C;
  Tensor d = Tensor::empty({M}, DType::F32, fx.device());
  lpips_rows_kernel<<<warp_grid(M), 256, 0, cur_stream()>>>(
      ptr(fx, op, "fx"), ptr(fy, op, "fy"), ptr(w, op, "w"), static_cast<float>(eps), M, C,
      static_cast<float*>(d.raw()));
  RAE_CUDA_LAUNCHED(op);
  return device_sum(RowValue{static_cast<const float*>(d.raw())}, M, op) / static_cast<double>(M);
}

void lpips_distance_backward(const Tensor& dfx, const Tensor& fx, const Tensor& fy, const Tensor& w,
                             double eps, double scale) {
  const char* op = "cuda::lpips_distance_backward";
  const int64_t C = last_dim(fx), M = fx.numel() / C;
  lpips_bwd_kernel<<<warp_grid(M), 256, 0, cur_stream()>>>(
      ptr(dfx, op, "dfx"), ptr(fx, op, "fx"), ptr(fy, op, "fy"), ptr(w, op, "w"),
      static_cast<float>(eps), static_cast<float>(2.0 * scale / static_cast<double>(M)), M, C);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
