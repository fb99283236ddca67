// CUDA pixel ops (channels last), F32 math on F32/BF16 data: per-channel affine, the
// discriminator's quantisation, PyTorch's bilinear resize and its gathering backward (each
// input pixel sums the outputs whose taps touch it: no atomics, deterministic).
#include "ops/cuda/common.cuh"
#include "ops/image.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

struct Affine {
  float scale[kMaxAffineChannels], shift[kMaxAffineChannels];
};
Affine affine_of(const std::vector<double>& scale, const std::vector<double>& shift) {
  Affine a{};
  for (size_t c = 0; c < scale.size(); ++c) {
    a.scale[c] = static_cast<float>(scale[c]);
    a.shift[c] = shift.empty() ? 0.f : static_cast<float>(shift[c]);
  }
  return a;
}

// Flat loops over every element (images have 3 channels: a block per row would idle).
__global__ void affine_fwd_kernel(Ptr out, Ptr x, Affine a, int64_t n, int64_t C) {
  RAE_GRID_LOOP(i, n) out.st(i, x.ld(i) * a.scale[i % C] + a.shift[i % C]);
}
__global__ void affine_bwd_kernel(Ptr dx, Ptr dout, Affine a, int64_t n, int64_t C) {
  RAE_GRID_LOOP(i, n) dx.add(i, dout.ld(i) * a.scale[i % C]);
}

__global__ void quantize_kernel(Ptr out, Ptr x, int64_t n) {
  RAE_GRID_LOOP(i, n) {
    const float v = fminf(fmaxf(x.ld(i), -1.f), 1.f);
    out.st(i, rintf((v + 1.f) * 127.5f) / 127.5f - 1.f);  // rint: half to even
  }
}

__global__ void resize_fwd_kernel(Ptr out, Ptr x, int64_t N, int64_t H, int64_t W, int64_t C,
                                  int64_t OH, int64_t OW, float sh, float sw) {
  const int64_t total = N * OH * OW * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, l = (i / C) % OW, j = (i / (C * OW)) % OH, n = i / (C * OW * OH);
    const BilinearTap<float> a = bilinear_tap<float>(static_cast<int>(j), static_cast<int>(H), sh);
    const BilinearTap<float> b = bilinear_tap<float>(static_cast<int>(l), static_cast<int>(W), sw);
    auto at = [&](int y, int xx) { return x.ld(((n * H + y) * W + xx) * C + c); };
    const float t = b.w_lo * at(a.lo, b.lo) + b.w_hi * at(a.lo, b.hi);
    const float u = b.w_lo * at(a.hi, b.lo) + b.w_hi * at(a.hi, b.hi);
    out.st(i, a.w_lo * t + a.w_hi * u);
  }
}

__global__ void resize_bwd_kernel(Ptr dx, Ptr dout, int64_t N, int64_t H, int64_t W, int64_t C,
                                  int64_t OH, int64_t OW, float sh, float sw) {
  const int64_t total = N * H * W * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, k = (i / C) % W, y = (i / (C * W)) % H, n = i / (C * W * H);
    int j0, j1, l0, l1;
    bilinear_span(static_cast<int>(y), static_cast<int>(OH), sh, &j0, &j1);
    bilinear_span(static_cast<int>(k), static_cast<int>(OW), sw, &l0, &l1);
    float s = 0.f;
    for (int j = j0; j <= j1; ++j) {
      const float wy = bilinear_weight<float>(j, static_cast<int>(y), static_cast<int>(H), sh);
      if (wy == 0.f) continue;
      float row = 0.f;
      for (int l = l0; l <= l1; ++l) {
        const float wx = bilinear_weight<float>(l, static_cast<int>(k), static_cast<int>(W), sw);
        if (wx != 0.f) row += wx * dout.ld(((n * OH + j) * OW + l) * C + c);
      }
      s += wy * row;
    }
    dx.add(i, s);
  }
}

}  // namespace

void channel_affine_forward(const Tensor& out, const Tensor& x, const std::vector<double>& scale,
                            const std::vector<double>& shift) {
  const char* op = "cuda::channel_affine_forward";
  const int64_t n = x.numel();
  affine_fwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(out, op, "out"), ptr(x, op, "x"),
                                                          affine_of(scale, shift), n, last_dim(x));
  RAE_CUDA_LAUNCHED(op);
}

void channel_affine_backward(const Tensor& dx, const Tensor& dout,
                             const std::vector<double>& scale) {
  const char* op = "cuda::channel_affine_backward";
  const int64_t n = dout.numel();
  affine_bwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(dx, op, "dx"), ptr(dout, op, "dout"),
                                                          affine_of(scale, {}), n, last_dim(dout));
  RAE_CUDA_LAUNCHED(op);
}

void quantize_pm1(const Tensor& out, const Tensor& x) {
  const char* op = "cuda::quantize_pm1";
  quantize_kernel<<<grid_1d(x.numel()), 256, 0, cur_stream()>>>(ptr(out, op, "out"),
                                                                ptr(x, op, "x"), x.numel());
  RAE_CUDA_LAUNCHED(op);
}

void resize_bilinear_forward(const Tensor& out, const Tensor& x) {
  const char* op = "cuda::resize_bilinear_forward";
  const int64_t H = x.dim(1), W = x.dim(2), OH = out.dim(1), OW = out.dim(2);
  resize_fwd_kernel<<<grid_1d(out.numel()), 256, 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), x.dim(0), H, W, x.dim(3), OH, OW,
      static_cast<float>(H) / static_cast<float>(OH),
      static_cast<float>(W) / static_cast<float>(OW));
  RAE_CUDA_LAUNCHED(op);
}

void resize_bilinear_backward(const Tensor& dx, const Tensor& dout) {
  const char* op = "cuda::resize_bilinear_backward";
  const int64_t H = dx.dim(1), W = dx.dim(2), OH = dout.dim(1), OW = dout.dim(2);
  resize_bwd_kernel<<<grid_1d(dx.numel()), 256, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), dx.dim(0), H, W, dx.dim(3), OH, OW,
      static_cast<float>(H) / static_cast<float>(OH),
      static_cast<float>(W) / static_cast<float>(OW));
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
