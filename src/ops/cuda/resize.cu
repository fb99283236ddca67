// CUDA TF1-compatible bilinear resize (see ops/resize.h). Every multiply and add is an explicit
// round-to-nearest intrinsic (__fmul_rn, __fadd_rn, __fsub_rn), which nvcc never contracts into
// a fused multiply-add: the F32 result is bit-identical to torch-fidelity's float32 path and to
// the CPU backend. One thread per output element, channels innermost (coalesced).
#include "ops/cuda/common.cuh"
#include "ops/resize.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

// Source index and weight along one dimension (as the CPU backend's Axis, in float).
__device__ __forceinline__ void axis(int64_t i, float scale, int64_t in, int64_t* lo, int64_t* hi,
                                     float* d) {
  const float pos = __fmul_rn(static_cast<float>(i), scale);
  *lo = static_cast<int64_t>(pos);
  *hi = *lo + 1 < in - 1 ? *lo + 1 : in - 1;
  *d = __fsub_rn(pos, static_cast<float>(*lo));
}

__device__ __forceinline__ float lerp_rn(float a, float b, float d) {
  return __fadd_rn(a, __fmul_rn(__fsub_rn(b, a), d));
}

__global__ void resize_kernel(Ptr out, const uint8_t* x_u8, Ptr x_f, int64_t N, int64_t H,
                              int64_t W, int64_t C, int64_t OH, int64_t OW, float sy, float sx,
                              float sub, float div) {
  const int64_t total = N * OH * OW * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, ox = (i / C) % OW, oy = (i / (C * OW)) % OH, n = i / (C * OW * OH);
    int64_t y0, y1, x0, x1;
    float dy, dx;
    axis(oy, sy, H, &y0, &y1, &dy);
    axis(ox, sx, W, &x0, &x1, &dx);
    const int64_t base = n * H;
    auto at = [&](int64_t y, int64_t xx) {
      const int64_t j = ((base + y) * W + xx) * C + c;
      return x_u8 ? static_cast<float>(x_u8[j]) : x_f.ld(j);
    };
    const float top = lerp_rn(at(y0, x0), at(y0, x1), dx);
    const float bottom = lerp_rn(at(y1, x0), at(y1, x1), dx);
    const float v = lerp_rn(top, bottom, dy);
    out.st(i, __fdiv_rn(__fsub_rn(v, sub), div));
  }
}

}  // namespace

void resize_bilinear_tf1(const Tensor& out, const Tensor& x, double sub, double div) {
  const char* op = "cuda::resize_bilinear_tf1";
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t OH = out.dim(1), OW = out.dim(2);
  const float sy = static_cast<float>(static_cast<double>(H) / OH);
  const float sx = static_cast<float>(static_cast<double>(W) / OW);
  const bool u8 = x.dtype() == DType::U8;
  RAE_CHECK(x.is_cuda(), op, ": argument 'x' is ", x.str(), ", expected a CUDA tensor");
  const uint8_t* xu = u8 ? static_cast<const uint8_t*>(x.raw()) : nullptr;
  const int64_t total = out.numel();
  resize_kernel<<<grid_1d(total), 256, 0, cur_stream()>>>(
      ptr(out, op, "out"), xu, u8 ? Ptr{} : ptr(x, op, "x"), N, H, W, C, OH, OW, sy, sx,
      static_cast<float>(sub), static_cast<float>(div));
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
