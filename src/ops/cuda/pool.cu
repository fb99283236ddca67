// CUDA 2-D pooling (channels last), F32 math on F32/BF16 data. One thread per (pixel, channel):
// consecutive threads read consecutive channels (coalesced in NHWC). The backward kernels
// gather: each dx element sums the outputs whose windows contain it, in scan order (max pool
// recomputes each window's first maximum), so results are deterministic without atomics.
// (These are our kernels rather than cuDNN's pooling: they read and write channel slices of
// concat buffers, which cuDNN's NHWC pooling does not, and pooling is memory-bound.)
#include "ops/cuda/common.cuh"
#include "ops/pool.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

struct Geo {
  int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, ph, pw;
  bool include_pad;
};
Geo geo(const PoolGeometry& g) {
  const Pool2dParams& p = g.p;
  return {g.N,
          g.H,
          g.W,
          g.C,
          g.OH,
          g.OW,
          p.kernel_h,
          p.kernel_w,
          p.stride_h,
          p.stride_w,
          p.pad_h,
          p.pad_w,
          p.count_include_pad};
}

struct Win {
  int64_t h0, h1, w0, w1;
};
__device__ __forceinline__ Win window(const Geo& g, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.sh - g.ph, ws = ow * g.sw - g.pw;
  return {hs > 0 ? hs : 0, hs + g.kh < g.H ? hs + g.kh : g.H, ws > 0 ? ws : 0,
          ws + g.kw < g.W ? ws + g.kw : g.W};
}
__device__ __forceinline__ Win adaptive_window(const Geo& g, int64_t oh, int64_t ow) {
  return {oh * g.H / g.OH, ((oh + 1) * g.H + g.OH - 1) / g.OH, ow * g.W / g.OW,
          ((ow + 1) * g.W + g.OW - 1) / g.OW};
}
__device__ __forceinline__ float divisor(const Geo& g, const Win& w) {
  return g.include_pad ? static_cast<float>(g.kh * g.kw)
                       : static_cast<float>((w.h1 - w.h0) * (w.w1 - w.w0));
}
__device__ __forceinline__ int64_t pix(const Geo& g, int64_t n, int64_t h, int64_t w) {
  return (n * g.H + h) * g.W + w;
}
// Outputs [lo, hi] along one dim whose windows (start o*s - p, length k) can contain index i.
__device__ __forceinline__ void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t O,
                                         int64_t* lo, int64_t* hi) {
  const int64_t a = i + p - k + 1;
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  const int64_t b = (i + p) / s;
  *hi = b < O - 1 ? b : O - 1;
}

// Row of the first maximum of channel c in window w (NaN wins at once), as the CPU backend.
__device__ int64_t argmax_row(Ptr x, const Geo& g, int64_t n, const Win& w, int64_t c) {
  float best = -INFINITY;
  int64_t arg = pix(g, n, w.h0, w.w0);
  for (int64_t h = w.h0; h < w.h1; ++h)
    for (int64_t ww = w.w0; ww < w.w1; ++ww) {
      const int64_t r = pix(g, n, h, ww);
      const float v = x.ld2(r, c, g.C);
      if (isnan(v)) return r;
      if (v > best) {
        best = v;
        arg = r;
      }
    }
  return arg;
}

__global__ void max_fwd_kernel(Ptr out, Ptr x, Geo g) {
  const int64_t R = g.N * g.OH * g.OW;
  RAE_ROW_LOOP(r, c, R, g.C) {
    const int64_t n = r / (g.OH * g.OW), rem = r % (g.OH * g.OW);
    const Win w = window(g, rem / g.OW, rem % g.OW);
    float m = -INFINITY;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t ww = w.w0; ww < w.w1; ++ww) {
        const float v = x.ld2(pix(g, n, h, ww), c, g.C);
        if (v > m || isnan(v)) m = v;
      }
    out.st2(r, c, g.C, m);
  }
}

__global__ void max_bwd_kernel(Ptr dx, Ptr dout, Ptr x, Geo g) {
  const int64_t R = g.N * g.H * g.W;
  RAE_ROW_LOOP(r, c, R, g.C) {
    const int64_t n = r / (g.H * g.W), rem = r % (g.H * g.W);
    const int64_t ih = rem / g.W, iw = rem % g.W;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.OH, &oh0, &oh1);
    covering(iw, g.kw, g.sw, g.pw, g.OW, &ow0, &ow1);
    float acc = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (argmax_row(x, g, n, window(g, oh, ow), c) == r)
          acc += dout.ld2((n * g.OH + oh) * g.OW + ow, c, g.C);
    dx.add2(r, c, g.C, acc);
  }
}

__global__ void avg_fwd_kernel(Ptr out, Ptr x, Geo g, bool adaptive) {
  const int64_t R = g.N * g.OH * g.OW;
  RAE_ROW_LOOP(r, c, R, g.C) {
    const int64_t n = r / (g.OH * g.OW), rem = r % (g.OH * g.OW);
    const int64_t oh = rem / g.OW, ow = rem % g.OW;
    const Win w = adaptive ? adaptive_window(g, oh, ow) : window(g, oh, ow);
    float s = 0.f;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t ww = w.w0; ww < w.w1; ++ww) s += x.ld2(pix(g, n, h, ww), c, g.C);
    const float div = adaptive ? static_cast<float>((w.h1 - w.h0) * (w.w1 - w.w0)) : divisor(g, w);
    out.st2(r, c, g.C, s / div);
  }
}

__global__ void avg_bwd_kernel(Ptr dx, Ptr dout, Geo g) {
  const int64_t R = g.N * g.H * g.W;
  RAE_ROW_LOOP(r, c, R, g.C) {
    const int64_t n = r / (g.H * g.W), rem = r % (g.H * g.W);
    const int64_t ih = rem / g.W, iw = rem % g.W;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.OH, &oh0, &oh1);
    covering(iw, g.kw, g.sw, g.pw, g.OW, &ow0, &ow1);
    float acc = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        acc += dout.ld2((n * g.OH + oh) * g.OW + ow, c, g.C) / divisor(g, window(g, oh, ow));
    dx.add2(r, c, g.C, acc);
  }
}

__global__ void adaptive_bwd_kernel(Ptr dx, Ptr dout, Geo g) {
  const int64_t R = g.N * g.H * g.W;
  RAE_ROW_LOOP(r, c, R, g.C) {
    const int64_t n = r / (g.H * g.W), rem = r % (g.H * g.W);
    const int64_t ih = rem / g.W, iw = rem % g.W;
    // Candidate outputs around ih * OH / H, each checked for containment.
    const int64_t oh0 = ih * g.OH / g.H > 0 ? ih * g.OH / g.H - 1 : 0;
    const int64_t ow0 = iw * g.OW / g.W > 0 ? iw * g.OW / g.W - 1 : 0;
    float acc = 0.f;
    for (int64_t oh = oh0; oh < g.OH && oh * g.H / g.OH <= ih; ++oh)
      for (int64_t ow = ow0; ow < g.OW && ow * g.W / g.OW <= iw; ++ow) {
        const Win w = adaptive_window(g, oh, ow);
        if (ih < w.h0 || ih >= w.h1 || iw < w.w0 || iw >= w.w1) continue;
        acc += dout.ld2((n * g.OH + oh) * g.OW + ow, c, g.C) /
               static_cast<float>((w.h1 - w.h0) * (w.w1 - w.w0));
      }
    dx.add2(r, c, g.C, acc);
  }
}

}  // namespace

void max_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& pg) {
  const char* op = "cuda::max_pool2d_forward";
  const Geo g = geo(pg);
  max_fwd_kernel<<<grid_rows(g.N * g.OH * g.OW), threads_for_cols(g.C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), g);
  RAE_CUDA_LAUNCHED(op);
}

void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& x,
                         const PoolGeometry& pg) {
  const char* op = "cuda::max_pool2d_backward";
  const Geo g = geo(pg);
  max_bwd_kernel<<<grid_rows(g.N * g.H * g.W), threads_for_cols(g.C), 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(x, op, "x"), g);
  RAE_CUDA_LAUNCHED(op);
}

void avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& pg) {
  const char* op = "cuda::avg_pool2d_forward";
  const Geo g = geo(pg);
  avg_fwd_kernel<<<grid_rows(g.N * g.OH * g.OW), threads_for_cols(g.C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), g, false);
  RAE_CUDA_LAUNCHED(op);
}

void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& pg) {
  const char* op = "cuda::avg_pool2d_backward";
  const Geo g = geo(pg);
  avg_bwd_kernel<<<grid_rows(g.N * g.H * g.W), threads_for_cols(g.C), 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), g);
  RAE_CUDA_LAUNCHED(op);
}

void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& pg) {
  const char* op = "cuda::adaptive_avg_pool2d_forward";
  const Geo g = geo(pg);
  avg_fwd_kernel<<<grid_rows(g.N * g.OH * g.OW), threads_for_cols(g.C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), g, true);
  RAE_CUDA_LAUNCHED(op);
}

void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& pg) {
  const char* op = "cuda::adaptive_avg_pool2d_backward";
  const Geo g = geo(pg);
  adaptive_bwd_kernel<<<grid_rows(g.N * g.H * g.W), threads_for_cols(g.C), 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), g);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
