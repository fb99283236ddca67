// CUDA DiffAug (translation, colour, cutout) on NHWC images, F32 math on F32/BF16 data. The
// colour op's per-sample means are block sums in double (one block per sample, fixed order).
#include "ops/cuda/common.cuh"
#include "ops/diffaug.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

constexpr int kThreads = 256;

const int32_t* iptr(const Tensor& t) {
  return static_cast<const int32_t*>(t.raw());
}
const float* fptr(const Tensor& t) {
  return static_cast<const float*>(t.raw());
}

__global__ void shift_kernel(Ptr dst, Ptr src, const int32_t* sh, int sign, bool accumulate,
                             int64_t B, int64_t H, int64_t W, int64_t C) {
  RAE_GRID_LOOP(i, B * H * W * C) {
    const int64_t c = i % C, w = (i / C) % W, h = (i / (C * W)) % H, b = i / (C * W * H);
    const int64_t sy = h + sign * sh[2 * b], sx = w + sign * sh[2 * b + 1];
    const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
    const float v = inside ? src.ld(((b * H + sy) * W + sx) * C + c) : 0.f;
    if (accumulate) {
      if (inside) dst.add(i, v);
    } else {
      dst.st(i, v);
    }
  }
}

// Block b: the sum over its sample of y2 (mode 0, from x and the factors) or of dout (mode 1).
__global__ void sample_sum_kernel(Ptr x, const float* f, int mode, int64_t HW, int64_t C,
                                  double* sums) {
  __shared__ double part[32];
  const int64_t b = blockIdx.x;
  double s = 0;
  for (int64_t p = threadIdx.x; p < HW; p += blockDim.x) {
    const int64_t base = (b * HW + p) * C;
    if (mode == 1) {
      for (int64_t c = 0; c < C; ++c) s += x.ld(base + c);
    } else {
      const float a = f[3 * b], sat = f[3 * b + 1];
      float m1 = 0.f;
      for (int64_t c = 0; c < C; ++c) m1 += x.ld(base + c) + a;
      m1 /= static_cast<float>(C);
      for (int64_t c = 0; c < C; ++c) s += (x.ld(base + c) + a - m1) * sat + m1;
    }
  }
  s = warp_sum_d(s);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = s;
  __syncthreads();
  if (warp == 0) {
    double t = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0;
    t = warp_sum_d(t);
    if (lane == 0) sums[b] = t;
  }
}

__global__ void color_fwd_kernel(Ptr out, Ptr x, const float* f, const double* sums, int64_t B,
                                 int64_t HW, int64_t C) {
  RAE_GRID_LOOP(q, B * HW) {
    const int64_t b = q / HW, base = q * C;
    const float a = f[3 * b], sat = f[3 * b + 1], k = f[3 * b + 2];
    const float m2 = static_cast<float>(sums[b] / static_cast<double>(HW * C));
    float m1 = 0.f;
    for (int64_t c = 0; c < C; ++c) m1 += x.ld(base + c) + a;
    m1 /= static_cast<float>(C);
    for (int64_t c = 0; c < C; ++c) {
      const float y2 = (x.ld(base + c) + a - m1) * sat + m1;
      out.st(base + c, (y2 - m2) * k + m2);
    }
  }
}

__global__ void color_bwd_kernel(Ptr dx, Ptr dout, const float* f, const double* sums, int64_t B,
                                 int64_t HW, int64_t C) {
  RAE_GRID_LOOP(q, B * HW) {
    const int64_t b = q / HW, base = q * C;
    const float sat = f[3 * b + 1], k = f[3 * b + 2];
    const float mg = static_cast<float>(sums[b] / static_cast<double>(HW * C));
    float sum2 = 0.f;
    for (int64_t c = 0; c < C; ++c) sum2 += k * dout.ld(base + c) + (1.f - k) * mg;
    const float m = sum2 / static_cast<float>(C);
    for (int64_t c = 0; c < C; ++c) {
      const float dy2 = k * dout.ld(base + c) + (1.f - k) * mg;
      dx.add(base + c, sat * dy2 + (1.f - sat) * m);
    }
  }
}

__global__ void cutout_kernel(Ptr out, Ptr x, const int32_t* bx, bool accumulate, int64_t B,
                              int64_t H, int64_t W, int64_t C) {
  RAE_GRID_LOOP(i, B * H * W * C) {
    const int64_t w = (i / C) % W, h = (i / (C * W)) % H, b = i / (C * W * H);
    const int32_t* q = bx + 4 * b;
    const bool cut = h >= q[0] && h < q[1] && w >= q[2] && w < q[3];
    if (accumulate) {
      if (!cut) out.add(i, x.ld(i));
    } else {
      out.st(i, cut ? 0.f : x.ld(i));
    }
  }
}

Tensor sample_sums(const Tensor& x, const Tensor& factors, int mode, const char* op) {
  const int64_t B = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3);
  Tensor sums = Tensor::empty({B}, DType::F64, x.device());
  sample_sum_kernel<<<static_cast<unsigned>(B), kThreads, 0, cur_stream()>>>(
      ptr(x, op, "x"), fptr(factors), mode, HW, C, static_cast<double*>(sums.raw()));
  RAE_CUDA_LAUNCHED(op);
  return sums;
}

}  // namespace

void diffaug_translate_forward(const Tensor& out, const Tensor& x, const Tensor& shifts) {
  const char* op = "cuda::diffaug_translate_forward";
  shift_kernel<<<grid_1d(x.numel()), kThreads, 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), iptr(shifts), 1, false, x.dim(0), x.dim(1), x.dim(2),
      x.dim(3));
  RAE_CUDA_LAUNCHED(op);
}

void diffaug_translate_backward(const Tensor& dx, const Tensor& dout, const Tensor& shifts) {
  const char* op = "cuda::diffaug_translate_backward";
  shift_kernel<<<grid_1d(dout.numel()), kThreads, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), iptr(shifts), -1, true, dout.dim(0), dout.dim(1),
      dout.dim(2), dout.dim(3));
  RAE_CUDA_LAUNCHED(op);
}

void diffaug_color_forward(const Tensor& out, const Tensor& x, const Tensor& factors) {
  const char* op = "cuda::diffaug_color_forward";
  Tensor sums = sample_sums(x, factors, 0, op);
  const int64_t B = x.dim(0), HW = x.dim(1) * x.dim(2);
  color_fwd_kernel<<<grid_1d(B * HW), kThreads, 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), fptr(factors), static_cast<const double*>(sums.raw()),
      B, HW, x.dim(3));
  RAE_CUDA_LAUNCHED(op);
}

void diffaug_color_backward(const Tensor& dx, const Tensor& dout, const Tensor& factors) {
  const char* op = "cuda::diffaug_color_backward";
  Tensor sums = sample_sums(dout, factors, 1, op);
  const int64_t B = dout.dim(0), HW = dout.dim(1) * dout.dim(2);
  color_bwd_kernel<<<grid_1d(B * HW), kThreads, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), fptr(factors),
      static_cast<const double*>(sums.raw()), B, HW, dout.dim(3));
  RAE_CUDA_LAUNCHED(op);
}

void diffaug_cutout(const Tensor& out, const Tensor& x, const Tensor& boxes, bool accumulate) {
  const char* op = "cuda::diffaug_cutout";
  cutout_kernel<<<grid_1d(x.numel()), kThreads, 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), iptr(boxes), accumulate, x.dim(0), x.dim(1), x.dim(2),
      x.dim(3));
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
