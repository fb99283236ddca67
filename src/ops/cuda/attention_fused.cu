// The attention op's fused tensor-core path: routes bf16 (and, by precision, F32) attention to
// cuDNN's fused SDPA (attention_cudnn.cpp), with the dtype conversions and the gradient
// accumulation the op's contract needs. Vectorised elementwise kernels: 16-byte loads where the
// buffers allow (fresh allocations always do), a scalar tail otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "ops/cuda/attention_cudnn.h"
#include "ops/cuda/common.cuh"
#include "ops/precision.h"

namespace rae::ops::cuda_detail {

namespace {

std::atomic<int64_t> g_calls{0};

template <class T>
__device__ __forceinline__ float to_f(T v) {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else if constexpr (std::is_same_v<T, __half>)
    return __half2float(v);
  else
    return __bfloat162float(v);
}
template <class T>
__device__ __forceinline__ T from_f(float v) {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else if constexpr (std::is_same_v<T, __half>)
    return __float2half(v);
  else
    return __float2bfloat16(v);
}

// dst[i] = src[i] (Add = false) or dst[i] += src[i] (Add = true), converting types; 8 elements
// per thread step when both buffers are 16-byte aligned, else element by element.
template <class TD, class TS, bool Add>
__global__ void map_kernel(TD* __restrict__ dst, const TS* __restrict__ src, int64_t n, bool vec) {
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t nv = n / 8;
    for (int64_t v = tid; v < nv; v += step) {
      alignas(16) TS s[8];
      alignas(16) TD d[8];
      // 8 elements: one or two 16-byte accesses per buffer.
#pragma unroll
      for (int k = 0; k < 8 * (int)sizeof(TS) / 16; ++k)
        reinterpret_cast<int4*>(s)[k] = reinterpret_cast<const int4*>(src + v * 8)[k];
      if constexpr (Add) {
#pragma unroll
        for (int k = 0; k < 8 * (int)sizeof(TD) / 16; ++k)
          reinterpret_cast<int4*>(d)[k] = reinterpret_cast<const int4*>(dst + v * 8)[k];
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) d[k] = from_f<TD>((Add ? to_f(d[k]) : 0.f) + to_f(s[k]));
#pragma unroll
      for (int k = 0; k < 8 * (int)sizeof(TD) / 16; ++k)
        reinterpret_cast<int4*>(dst + v * 8)[k] = reinterpret_cast<int4*>(d)[k];
    }
    done = nv * 8;
  }
  for (int64_t i = done + tid; i < n; i += step)
    dst[i] = from_f<TD>((Add ? to_f(dst[i]) : 0.f) + to_f(src[i]));
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

template <class TD, class TS, bool Add>
void map(void* dst, const void* src, int64_t n) {
  if (n == 0) return;
  bool vec = aligned16(dst) && aligned16(src);
  int64_t work = vec ? n / 8 + 1 : n;
  map_kernel<TD, TS, Add><<<grid_1d(work), 256, 0, cur_stream()>>>(
      static_cast<TD*>(dst), static_cast<const TS*>(src), n, vec);
  RAE_CUDA_LAUNCHED(Add ? "fused attention (accumulate)" : "fused attention (convert)");
}

// F32 <-> the 16-bit type of the problem.
void to16(SdpaType t, void* dst, const Tensor& src) {
  if (t == SdpaType::BF16)
    map<__nv_bfloat16, float, false>(dst, src.raw(), src.numel());
  else
    map<__half, float, false>(dst, src.raw(), src.numel());
}
void from16(SdpaType t, const Tensor& dst, const void* src, bool add) {
  if (t == SdpaType::BF16) {
    if (add)
      map<float, __nv_bfloat16, true>(dst.raw(), src, dst.numel());
    else
      map<float, __nv_bfloat16, false>(dst.raw(), src, dst.numel());
  } else {
    if (add)
      map<float, __half, true>(dst.raw(), src, dst.numel());
    else
      map<float, __half, false>(dst.raw(), src, dst.numel());
  }
}

bool env_on(const char* name) {
  const char* s = std::getenv(name);
  return s && *s && std::strcmp(s, "0") != 0;
}

// The cuDNN problem for these tensors, or false when the fused path does not apply: another
// implementation was chosen, mixed or unsupported dtypes, non-contiguous tensors, a head dim
// cuDNN has no engine for (multiples of 8 up to 256), or F32 under a precision that must not
// round to 16 bits.
bool plan(std::initializer_list<const Tensor*> ts, const Tensor& qkv, double scale, SdpaProblem* p,
          bool* convert) {
  AttentionImpl impl = attention_impl();
  if (impl != AttentionImpl::Auto && impl != AttentionImpl::Cudnn) return false;
  if (!sdpa_built()) return false;
  DType dt = qkv.dtype();
  for (const Tensor* t : ts)
    if (!t->defined() || t->dtype() != dt || !t->is_contiguous()) return false;
  p->B = qkv.dim(0), p->T = qkv.dim(1), p->H = qkv.dim(3), p->D = qkv.dim(4);
  p->scale = static_cast<float>(scale);
  if (p->D % 8 != 0 || p->D > 256 || p->B * p->T * p->H == 0) return false;
  if (dt == DType::BF16) {
    p->type = SdpaType::BF16;
    *convert = false;
    return true;
  }
  if (dt != DType::F32) return false;
  *convert = true;
  if (precision() == Precision::BF16) {
    p->type = SdpaType::BF16;
    return true;
  }
  if (precision() == Precision::TF32 && env_on("RAE_ATTENTION_TF32_FP16")) {
    p->type = SdpaType::F16;
    return true;
  }
  return false;
}

Tensor scratch16(const Tensor& like) {
  return Tensor::empty(like.shape(), DType::BF16, like.device());  // 2-byte elements (bf16 or fp16)
}

}  // namespace

int64_t fused_attention_calls() {
  return g_calls.load();
}

bool fused_attention_forward(const Tensor& out, float* lse, const Tensor& qkv, double scale) {
  SdpaProblem p;
  bool convert = false;
  if (!plan({&qkv, &out}, qkv, scale, &p, &convert)) return false;
  bool ok;
  if (!convert) {
    ok = sdpa_forward(p, qkv.raw(), out.raw(), lse);
  } else {
    Tensor q16 = scratch16(qkv), o16 = scratch16(out);
    to16(p.type, q16.raw(), qkv);
    ok = sdpa_forward(p, q16.raw(), o16.raw(), lse);
    if (ok) from16(p.type, out, o16.raw(), false);
  }
  if (ok) ++g_calls;
  return ok;
}

bool fused_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                              const Tensor& out, const float* lse, double scale, bool overwrite) {
  SdpaProblem p;
  bool convert = false;
  if (!plan({&qkv, &dqkv, &dout, &out}, qkv, scale, &p, &convert)) return false;
  bool ok;
  if (!convert && overwrite) {  // cuDNN writes dqkv (B, T, 3, H, D) itself
    ok = sdpa_backward(p, qkv.raw(), out.raw(), dout.raw(), lse, dqkv.raw());
  } else if (!convert) {
    Tensor grad16 = scratch16(qkv);  // cuDNN writes; the op accumulates
    ok = sdpa_backward(p, qkv.raw(), out.raw(), dout.raw(), lse, grad16.raw());
    if (ok) map<__nv_bfloat16, __nv_bfloat16, true>(dqkv.raw(), grad16.raw(), dqkv.numel());
  } else {
    Tensor grad16 = scratch16(qkv);
    Tensor q16 = scratch16(qkv), o16 = scratch16(out), do16 = scratch16(dout);
    to16(p.type, q16.raw(), qkv);
    to16(p.type, o16.raw(), out);
    to16(p.type, do16.raw(), dout);
    ok = sdpa_backward(p, q16.raw(), o16.raw(), do16.raw(), lse, grad16.raw());
    if (ok) from16(p.type, dqkv, grad16.raw(), !overwrite);
  }
  if (ok) ++g_calls;
  return ok;
}

}  // namespace rae::ops::cuda_detail
