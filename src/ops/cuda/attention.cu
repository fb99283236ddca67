// CUDA softmax, fused multi-head attention and 2D RoPE.
//
// Three attention paths, chosen per call by ops::attention_impl() (RAE_ATTENTION at start-up):
// cuDNN's fused tensor-core SDPA (attention_fused.cu / attention_cudnn.cpp: bf16, Auto's first
// choice where it can run), the tensor-core GEMM path below (scores materialised per chunk) and
// the CUDA-core flash kernels. All save the same lse, so a forward on one path and a backward on
// another agree.
//
// Attention is flash-style (FlashAttention-2 structure on CUDA cores, F32 math): the forward
// pass streams key/value tiles through shared memory with an online softmax and saves the
// log-sum-exp per query row; the backward pass recomputes the probabilities from it, in two
// kernels so that every gradient element has exactly one writer (no atomics, deterministic):
// one walks key tiles for dQ, one walks query tiles for dK and dV.
// Work split: a block of kWarps warps owns kRows rows per warp (queries, or keys for dK/dV);
// lane j of a warp scores key (or query) j of the current 32-wide tile, and for the weighted
// sums each lane owns the head-dim columns lane, lane+32, ... Shared rows that lanes read
// row-wise are padded to D+1 floats so the accesses hit distinct banks.
#include <cmath>
#include <type_traits>

#include "ops/attention.h"
#include "ops/cuda/attention_cudnn.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/gemm.cuh"
#include "ops/precision.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 4;                    // rows per warp
constexpr int kBlockRows = kWarps * kRows;  // rows per block
constexpr int kTile = 32;                   // streamed keys (or queries) per tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Element offsets in qkv (B, T, 3, H, D) and out (B, T, H, D).
__device__ __forceinline__ int64_t qkv_off(int64_t b, int64_t t, int part, int64_t h, int64_t T,
                                           int64_t H, int64_t D) {
  return (((b * T + t) * 3 + part) * H + h) * D;
}
__device__ __forceinline__ int64_t out_off(int64_t b, int64_t t, int64_t h, int64_t T, int64_t H,
                                           int64_t D) {
  return ((b * T + t) * H + h) * D;
}

// Loads rows [t0, t0 + n) of one head of `part` (or of a (B, T, H, D) tensor when part < 0) into
// shared memory with row stride `stride`, scaled by `mul`; rows past T are zero.
__device__ void load_rows(float* dst, int stride, Ptr src, int part, int64_t b, int64_t h,
                          int64_t t0, int n, int64_t T, int64_t H, int D, float mul) {
  for (int idx = threadIdx.x; idx < n * D; idx += blockDim.x) {
    int r = idx / D, d = idx - r * D;
    int64_t t = t0 + r;
    float v = 0.f;
    if (t < T) {
      int64_t off = part >= 0 ? qkv_off(b, t, part, h, T, H, D) : out_off(b, t, h, T, H, D);
      v = src.ld(off + d) * mul;
    }
    dst[r * stride + d] = v;
  }
}

size_t fwd_smem_floats(int64_t D) {
  return kBlockRows * D + kTile * (D + 1) + kTile * D;
}
size_t bwd_smem_floats(int64_t D) {
  return 2 * kBlockRows * D + 2 * kTile * (D + 1) + 2 * kTile;
}

// grid (ceil(T / kBlockRows), B * H), block kWarps * 32.
// DP: head-dim columns per lane (ceil(D / 32) at most); DC: D when fixed at compile time, else 0
// and D = d_rt.
template <int DP, int DC>
__global__ void __launch_bounds__(kWarps * 32)
    attn_fwd_kernel(int d_rt, Ptr qkv, Ptr out, float* lse, int64_t T, int64_t H,
                    float scale_log2) {
  const int D = DC > 0 ? DC : d_rt, DS = D + 1;
  extern __shared__ float smem[];
  float* qs = smem;                 // [kBlockRows][D], pre-scaled by scale * log2(e)
  float* ks = qs + kBlockRows * D;  // [kTile][DS]
  float* vs = ks + kTile * DS;      // [kTile][D]
  const int64_t b = blockIdx.y / H, h = blockIdx.y % H;
  const int64_t q0 = (int64_t)blockIdx.x * kBlockRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  load_rows(qs, D, qkv, 0, b, h, q0, kBlockRows, T, H, D, scale_log2);

  float m[kRows], l[kRows], o[kRows][DP];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int k = 0; k < DP; ++k) o[r][k] = 0.f;
  }
  const float* qw = qs + warp * kRows * D;
  for (int64_t k0 = 0; k0 < T; k0 += kTile) {
    __syncthreads();  // previous tile fully consumed (and, first time, Q loaded)
    load_rows(ks, DS, qkv, 1, b, h, k0, kTile, T, H, D, 1.f);
    load_rows(vs, D, qkv, 2, b, h, k0, kTile, T, H, D, 1.f);
    __syncthreads();
    float s[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] = 0.f;
    const float* kr = ks + lane * DS;
    for (int d = 0; d < D; ++d) {
      float kv = kr[d];
#pragma unroll
      for (int r = 0; r < kRows; ++r) s[r] += qw[r * D + d] * kv;
    }
    const bool valid = k0 + lane < T;
    const int n_valid = T - k0 < kTile ? static_cast<int>(T - k0) : kTile;
    float p[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float sr = valid ? s[r] : -INFINITY;
      float m_new = fmaxf(m[r], warp_max(sr));  // finite: key k0 is always valid
      p[r] = valid ? exp2f(sr - m_new) : 0.f;
      float alpha = exp2f(m[r] - m_new);  // 0 on the first tile (m = -inf)
      l[r] = l[r] * alpha + warp_sum(p[r]);
      m[r] = m_new;
#pragma unroll
      for (int k = 0; k < DP; ++k) o[r][k] *= alpha;
    }
    for (int j = 0; j < n_valid; ++j) {
      float pj[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) pj[r] = __shfl_sync(0xffffffffu, p[r], j);
#pragma unroll
      for (int k = 0; k < DP; ++k) {
        int d = lane + 32 * k;
        if (d < D) {
          float v = vs[j * D + d];
#pragma unroll
          for (int r = 0; r < kRows; ++r) o[r][k] += pj[r] * v;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    int64_t t = q0 + warp * kRows + r;
    if (t >= T) continue;
    float inv = 1.f / l[r];
    int64_t off = out_off(b, t, h, T, H, D);
#pragma unroll
    for (int k = 0; k < DP; ++k) {
      int d = lane + 32 * k;
      if (d < D) out.st(off + d, o[r][k] * inv);
    }
    if (lane == 0) lse[(b * H + h) * T + t] = (m[r] + log2f(l[r])) * kLn2;
  }
}

// delta[b, h, t] = sum_d dout * out (the softmax backward's row term). One warp per row.
__global__ void attn_delta_kernel(Ptr dout, Ptr out, float* delta, int64_t B, int64_t T, int64_t H,
                                  int64_t D) {
  int64_t row = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= B * T * H) return;
  int64_t h = row % H, t = (row / H) % T, b = row / (H * T);
  int64_t off = row * D;  // (B, T, H, D) rows in this order
  float s = 0.f;
  for (int64_t d = lane; d < D; d += 32) s += dout.ld(off + d) * out.ld(off + d);
  s = warp_sum(s);
  if (lane == 0) delta[(b * H + h) * T + t] = s;
}

// dQ: grid (ceil(T / kBlockRows), B * H). dq = scale * sum_j p_ij (dp_ij - delta_i) k_j.
// DP: head-dim columns per lane (ceil(D / 32) at most); DC: D when fixed at compile time, else 0
// and D = d_rt.
template <int DP, int DC>
__global__ void __launch_bounds__(kWarps * 32)
    attn_bwd_dq_kernel(int d_rt, Ptr qkv, Ptr dout, const float* lse, const float* delta, Ptr dqkv,
                       int64_t T, int64_t H, float scale, float scale_log2) {
  const int D = DC > 0 ? DC : d_rt, DS = D + 1;
  extern __shared__ float smem[];
  float* qs = smem;                  // [kBlockRows][D]
  float* dos = qs + kBlockRows * D;  // [kBlockRows][D]
  float* ks = dos + kBlockRows * D;  // [kTile][DS]
  float* vs = ks + kTile * DS;       // [kTile][DS]
  const int64_t b = blockIdx.y / H, h = blockIdx.y % H;
  const int64_t q0 = (int64_t)blockIdx.x * kBlockRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  load_rows(qs, D, qkv, 0, b, h, q0, kBlockRows, T, H, D, scale_log2);
  load_rows(dos, D, dout, -1, b, h, q0, kBlockRows, T, H, D, 1.f);
  float lse2[kRows], di[kRows], dq[kRows][DP];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    int64_t t = q0 + warp * kRows + r;
    bool ok = t < T;
    lse2[r] = ok ? lse[(b * H + h) * T + t] * kLog2e : 0.f;
    di[r] = ok ? delta[(b * H + h) * T + t] : 0.f;
#pragma unroll
    for (int k = 0; k < DP; ++k) dq[r][k] = 0.f;
  }
  const float* qw = qs + warp * kRows * D;
  const float* dow = dos + warp * kRows * D;
  for (int64_t k0 = 0; k0 < T; k0 += kTile) {
    __syncthreads();
    load_rows(ks, DS, qkv, 1, b, h, k0, kTile, T, H, D, 1.f);
    load_rows(vs, DS, qkv, 2, b, h, k0, kTile, T, H, D, 1.f);
    __syncthreads();
    float s[kRows], dp[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] = dp[r] = 0.f;
    const float* kr = ks + lane * DS;
    const float* vr = vs + lane * DS;
    for (int d = 0; d < D; ++d) {
      float kv = kr[d], vv = vr[d];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        s[r] += qw[r * D + d] * kv;
        dp[r] += dow[r * D + d] * vv;
      }
    }
    const bool valid = k0 + lane < T;
    const int n_valid = T - k0 < kTile ? static_cast<int>(T - k0) : kTile;
    float ds[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float p = valid ? exp2f(s[r] - lse2[r]) : 0.f;
      ds[r] = p * (dp[r] - di[r]);
    }
    for (int j = 0; j < n_valid; ++j) {
      float dsj[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) dsj[r] = __shfl_sync(0xffffffffu, ds[r], j);
#pragma unroll
      for (int k = 0; k < DP; ++k) {
        int d = lane + 32 * k;
        if (d < D) {
          float kv = ks[j * DS + d];
#pragma unroll
          for (int r = 0; r < kRows; ++r) dq[r][k] += dsj[r] * kv;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    int64_t t = q0 + warp * kRows + r;
    if (t >= T) continue;
    int64_t off = qkv_off(b, t, 0, h, T, H, D);
#pragma unroll
    for (int k = 0; k < DP; ++k) {
      int d = lane + 32 * k;
      if (d < D) dqkv.add(off + d, dq[r][k] * scale);
    }
  }
}

// dK, dV: grid (ceil(T / kBlockRows), B * H) over key rows.
// dv_j = sum_i p_ij do_i; dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i.
// DP: head-dim columns per lane (ceil(D / 32) at most); DC: D when fixed at compile time, else 0
// and D = d_rt.
template <int DP, int DC>
__global__ void __launch_bounds__(kWarps * 32)
    attn_bwd_dkv_kernel(int d_rt, Ptr qkv, Ptr dout, const float* lse, const float* delta, Ptr dqkv,
                        int64_t T, int64_t H, float scale, float scale_log2) {
  const int D = DC > 0 ? DC : d_rt, DS = D + 1;
  extern __shared__ float smem[];
  float* kb = smem;                 // [kBlockRows][D] this block's keys
  float* vb = kb + kBlockRows * D;  // [kBlockRows][D] this block's values
  float* qt = vb + kBlockRows * D;  // [kTile][DS] streamed queries (unscaled)
  float* dot = qt + kTile * DS;     // [kTile][DS] streamed output gradients
  float* lse_t = dot + kTile * DS;  // [kTile] log2-domain lse
  float* del_t = lse_t + kTile;     // [kTile]
  const int64_t b = blockIdx.y / H, h = blockIdx.y % H;
  const int64_t j0 = (int64_t)blockIdx.x * kBlockRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  load_rows(kb, D, qkv, 1, b, h, j0, kBlockRows, T, H, D, scale_log2);
  load_rows(vb, D, qkv, 2, b, h, j0, kBlockRows, T, H, D, 1.f);
  float dk[kRows][DP], dv[kRows][DP];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int k = 0; k < DP; ++k) dk[r][k] = dv[r][k] = 0.f;
  const float* kw = kb + warp * kRows * D;
  const float* vw = vb + warp * kRows * D;
  for (int64_t i0 = 0; i0 < T; i0 += kTile) {
    __syncthreads();
    load_rows(qt, DS, qkv, 0, b, h, i0, kTile, T, H, D, 1.f);
    load_rows(dot, DS, dout, -1, b, h, i0, kTile, T, H, D, 1.f);
    for (int i = threadIdx.x; i < kTile; i += blockDim.x) {
      bool ok = i0 + i < T;
      lse_t[i] = ok ? lse[(b * H + h) * T + i0 + i] * kLog2e : 0.f;
      del_t[i] = ok ? delta[(b * H + h) * T + i0 + i] : 0.f;
    }
    __syncthreads();
    float s[kRows], dp[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] = dp[r] = 0.f;
    const float* qr = qt + lane * DS;
    const float* dr = dot + lane * DS;
    for (int d = 0; d < D; ++d) {
      float qv = qr[d], dv_ = dr[d];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        s[r] += kw[r * D + d] * qv;  // keys carry scale * log2(e)
        dp[r] += vw[r * D + d] * dv_;
      }
    }
    const bool valid = i0 + lane < T;
    const int n_valid = T - i0 < kTile ? static_cast<int>(T - i0) : kTile;
    float p[kRows], ds[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      p[r] = valid ? exp2f(s[r] - lse_t[lane]) : 0.f;
      ds[r] = p[r] * (dp[r] - del_t[lane]);
    }
    for (int i = 0; i < n_valid; ++i) {
      float pi[kRows], dsi[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        pi[r] = __shfl_sync(0xffffffffu, p[r], i);
        dsi[r] = __shfl_sync(0xffffffffu, ds[r], i);
      }
#pragma unroll
      for (int k = 0; k < DP; ++k) {
        int d = lane + 32 * k;
        if (d < D) {
          float dov = dot[i * DS + d], qv = qt[i * DS + d];
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            dv[r][k] += pi[r] * dov;
            dk[r][k] += dsi[r] * qv;
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    int64_t t = j0 + warp * kRows + r;
    if (t >= T) continue;
    int64_t koff = qkv_off(b, t, 1, h, T, H, D), voff = qkv_off(b, t, 2, h, T, H, D);
#pragma unroll
    for (int k = 0; k < DP; ++k) {
      int d = lane + 32 * k;
      if (d < D) {
        dqkv.add(koff + d, dk[r][k] * scale);
        dqkv.add(voff + d, dv[r][k]);
      }
    }
  }
}

struct AttnShape {
  int64_t B, T, H, D;
};

AttnShape attn_shape(const Tensor& qkv, const char* op) {
  RAE_CHECK(qkv.defined() && qkv.ndim() == 5 && qkv.dim(2) == 3, op,
            ": qkv must be (B, T, 3, H, D), got ", qkv.defined() ? qkv.str() : "undefined");
  AttnShape s{qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4)};
  RAE_CHECK(s.B * s.H <= 65535, op, ": B * H = ", s.B * s.H, " exceeds the launch grid");
  return s;
}

// The largest dynamic shared memory any launch uses (head dim 256), allowed once per kernel.
constexpr int kMaxSmemBytes = (2 * kBlockRows * 256 + 2 * kTile * 257 + 2 * kTile) * 4;

template <int DP, int DC>
void launch_fwd(const AttnShape& s, Ptr qkv, Ptr out, float* lse, double scale) {
  size_t bytes = fwd_smem_floats(s.D) * sizeof(float);
  static bool configured = [] {
    RAE_CUDA_CHECK(cudaFuncSetAttribute(
        attn_fwd_kernel<DP, DC>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes));
    return true;
  }();
  (void)configured;
  dim3 grid((unsigned)((s.T + kBlockRows - 1) / kBlockRows), (unsigned)(s.B * s.H));
  attn_fwd_kernel<DP, DC><<<grid, kWarps * 32, bytes, cur_stream()>>>((int)s.D, qkv, out, lse, s.T,
                                                                      s.H, (float)scale * kLog2e);
  RAE_CUDA_LAUNCHED("cuda::attention_forward");
}

template <int DP, int DC>
void launch_bwd(const AttnShape& s, Ptr qkv, Ptr dout, const float* lse, const float* delta,
                Ptr dqkv, double scale) {
  size_t bytes = bwd_smem_floats(s.D) * sizeof(float);
  static bool configured = [] {
    RAE_CUDA_CHECK(cudaFuncSetAttribute(
        attn_bwd_dq_kernel<DP, DC>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes));
    RAE_CUDA_CHECK(cudaFuncSetAttribute(
        attn_bwd_dkv_kernel<DP, DC>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes));
    return true;
  }();
  (void)configured;
  dim3 grid((unsigned)((s.T + kBlockRows - 1) / kBlockRows), (unsigned)(s.B * s.H));
  float sc = (float)scale, sl = (float)scale * kLog2e;
  int d = (int)s.D;
  attn_bwd_dq_kernel<DP, DC><<<grid, kWarps * 32, bytes, cur_stream()>>>(d, qkv, dout, lse, delta,
                                                                         dqkv, s.T, s.H, sc, sl);
  RAE_CUDA_LAUNCHED("cuda::attention_backward (dq)");
  attn_bwd_dkv_kernel<DP, DC><<<grid, kWarps * 32, bytes, cur_stream()>>>(d, qkv, dout, lse, delta,
                                                                          dqkv, s.T, s.H, sc, sl);
  RAE_CUDA_LAUNCHED("cuda::attention_backward (dk, dv)");
}

// ---- GEMM attention (tensor cores) ---------------------------------------------------------
// Scores S = scale * Q K^T are materialized per chunk of samples (all heads), F32; the
// probabilities P (and in the backward dS) in the input dtype feed the next GEMM, as a fused
// kernel's tensor-core MMA would. Chunks bound the scratch to kMaxScoreElems scores.
constexpr int64_t kMaxScoreElems = int64_t(1) << 26;

// Row softmax of S (rows of T): P = exp(S - lse), lse = log sum exp (natural log). One warp per
// row.
__global__ void gemm_attn_softmax_kernel(const float* S, Ptr P, float* lse, int64_t rows,
                                         int64_t T) {
  int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const float* s = S + r * T;
  float mx = -INFINITY;
  for (int64_t j = lane; j < T; j += 32) mx = fmaxf(mx, s[j]);
  mx = warp_max(mx);
  float l = 0.f;
  for (int64_t j = lane; j < T; j += 32) l += __expf(s[j] - mx);
  l = warp_sum(l);
  float inv = 1.f / l;
  for (int64_t j = lane; j < T; j += 32) P.st(r * T + j, __expf(s[j] - mx) * inv);
  if (lane == 0) lse[r] = mx + logf(l);
}

// Backward: P = exp(S - lse) and dS = scale * P * (dP - delta), from the recomputed scores.
__global__ void gemm_attn_dscores_kernel(const float* S, const float* dP, const float* lse,
                                         const float* delta, Ptr P, Ptr dS, int64_t rows, int64_t T,
                                         float scale) {
  RAE_ROW_LOOP(r, j, rows, T) {
    int64_t i = r * T + j;
    float p = __expf(S[i] - lse[r]);
    P.st(i, p);
    dS.st(i, scale * p * (dP[i] - delta[r]));
  }
}

struct GemmAttn {
  AttnShape s;
  DType dt;
  char* qkv;   // element pointers as bytes
  size_t es;   // element size
  int64_t Bc;  // samples per chunk
  // Operand views of head h of chunk starting at sample b0.
  const void* q(int64_t b0, int64_t h) const {
    return qkv + es * ((b0 * s.T * 3 + 0) * s.H * s.D + h * s.D);
  }
  const void* k(int64_t b0, int64_t h) const {
    return qkv + es * ((b0 * s.T * 3) * s.H * s.D + (s.H + h) * s.D);
  }
  const void* v(int64_t b0, int64_t h) const {
    return qkv + es * ((b0 * s.T * 3) * s.H * s.D + (2 * s.H + h) * s.D);
  }
  int64_t ld_qkv() const { return 3 * s.H * s.D; }
  int64_t bs_qkv() const { return s.T * 3 * s.H * s.D; }
};

GemmAttn gemm_attn_setup(const AttnShape& s, const Tensor& qkv) {
  GemmAttn g{s, qkv.dtype(), static_cast<char*>(qkv.raw()), dtype_size(qkv.dtype()), 1};
  g.Bc = std::max<int64_t>(1, kMaxScoreElems / std::max<int64_t>(1, s.H * s.T * s.T));
  g.Bc = std::min(g.Bc, s.B);
  return g;
}

// S (Bc, H, T, T) F32 = scale * Q K^T for the chunk's samples [b0, b0 + nb).
void gemm_attn_scores(const GemmAttn& a, int64_t b0, int64_t nb, float* S, double scale) {
  const AttnShape& s = a.s;
  for (int64_t h = 0; h < s.H; ++h) {
    Gemm g;
    g.M = s.T, g.N = s.T, g.K = s.D;
    g.A = a.q(b0, h), g.lda = a.ld_qkv(), g.stride_a = a.bs_qkv();
    g.B = a.k(b0, h), g.ldb = a.ld_qkv(), g.tb = true, g.stride_b = a.bs_qkv();
    g.in_t = a.dt;
    g.C = S + h * s.T * s.T, g.ldc = s.T, g.c_t = DType::F32, g.stride_c = s.H * s.T * s.T;
    g.alpha = static_cast<float>(scale);
    g.batch = nb;
    run_gemm(g);
  }
}

void gemm_attention_forward(const AttnShape& s, const Tensor& out, float* lse, const Tensor& qkv,
                            double scale) {
  GemmAttn a = gemm_attn_setup(s, qkv);
  const int64_t TT = s.T * s.T;
  Tensor S = Tensor::empty({a.Bc * s.H * TT}, DType::F32, qkv.device());
  Tensor P = Tensor::empty({a.Bc * s.H * TT}, a.dt, qkv.device());
  Ptr pp = ptr(P, "cuda::attention_forward", "scratch");
  char* op = static_cast<char*>(out.raw());
  for (int64_t b0 = 0; b0 < s.B; b0 += a.Bc) {
    int64_t nb = std::min(a.Bc, s.B - b0), rows = nb * s.H * s.T;
    gemm_attn_scores(a, b0, nb, static_cast<float*>(S.raw()), scale);
    gemm_attn_softmax_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, cur_stream()>>>(
        static_cast<const float*>(S.raw()), pp, lse + b0 * s.H * s.T, rows, s.T);
    RAE_CUDA_LAUNCHED("cuda::attention_forward (softmax)");
    for (int64_t h = 0; h < s.H; ++h) {  // O = P V into out (B, T, H, D)
      Gemm g;
      g.M = s.T, g.N = s.D, g.K = s.T;
      g.A = static_cast<char*>(P.raw()) + a.es * h * TT, g.lda = s.T, g.stride_a = s.H * TT;
      g.B = a.v(b0, h), g.ldb = a.ld_qkv(), g.stride_b = a.bs_qkv();
      g.in_t = a.dt;
      g.C = op + a.es * (b0 * s.T * s.H * s.D + h * s.D), g.ldc = s.H * s.D, g.c_t = a.dt;
      g.stride_c = s.T * s.H * s.D;
      g.batch = nb;
      run_gemm(g);
    }
  }
}

// overwrite (GradMode::Overwrite): each of dQ, dK, dV is written once per (chunk, head) with
// beta = 0 instead of added with beta = 1.
void gemm_attention_backward(const AttnShape& s, const Tensor& dqkv, const Tensor& dout,
                             const Tensor& qkv, const float* lse, const float* delta, double scale,
                             bool overwrite) {
  GemmAttn a = gemm_attn_setup(s, qkv);
  GemmAttn d = gemm_attn_setup(s, dqkv);  // the same layout over the gradient
  const int64_t TT = s.T * s.T;
  Device dev = qkv.device();
  Tensor S = Tensor::empty({a.Bc * s.H * TT}, DType::F32, dev);
  Tensor dP = Tensor::empty({a.Bc * s.H * TT}, DType::F32, dev);
  Tensor P = Tensor::empty({a.Bc * s.H * TT}, a.dt, dev);
  Tensor dS = Tensor::empty({a.Bc * s.H * TT}, a.dt, dev);
  const char* dop = static_cast<const char*>(dout.raw());
  auto dO = [&](int64_t b0, int64_t h) { return dop + a.es * (b0 * s.T * s.H * s.D + h * s.D); };
  const int64_t ld_o = s.H * s.D, bs_o = s.T * s.H * s.D;
  for (int64_t b0 = 0; b0 < s.B; b0 += a.Bc) {
    int64_t nb = std::min(a.Bc, s.B - b0), rows = nb * s.H * s.T;
    gemm_attn_scores(a, b0, nb, static_cast<float*>(S.raw()), scale);
    for (int64_t h = 0; h < s.H; ++h) {  // dP = dO V^T
      Gemm g;
      g.M = s.T, g.N = s.T, g.K = s.D;
      g.A = dO(b0, h), g.lda = ld_o, g.stride_a = bs_o;
      g.B = a.v(b0, h), g.ldb = a.ld_qkv(), g.tb = true, g.stride_b = a.bs_qkv();
      g.in_t = a.dt;
      g.C = static_cast<float*>(dP.raw()) + h * TT, g.ldc = s.T, g.c_t = DType::F32;
      g.stride_c = s.H * TT;
      g.batch = nb;
      run_gemm(g);
    }
    gemm_attn_dscores_kernel<<<grid_rows(rows), threads_for_cols(s.T), 0, cur_stream()>>>(
        static_cast<const float*>(S.raw()), static_cast<const float*>(dP.raw()),
        lse + b0 * s.H * s.T, delta + b0 * s.H * s.T, ptr(P, "attention", "P"),
        ptr(dS, "attention", "dS"), rows, s.T, static_cast<float>(scale));
    RAE_CUDA_LAUNCHED("cuda::attention_backward (dscores)");
    for (int64_t h = 0; h < s.H; ++h) {
      const char* Ph = static_cast<const char*>(P.raw()) + a.es * h * TT;
      const char* dSh = static_cast<const char*>(dS.raw()) + a.es * h * TT;
      Gemm g;  // common: T x D results accumulated into dqkv, batched over the chunk's samples
      g.M = s.T, g.N = s.D, g.K = s.T;
      g.in_t = a.dt;
      g.lda = s.T, g.stride_a = s.H * TT;
      g.ldc = d.ld_qkv(), g.stride_c = d.bs_qkv(), g.c_t = d.dt;
      g.beta = overwrite ? 0.f : 1.f;
      g.batch = nb;
      Gemm gv = g;  // dV += P^T dO
      gv.A = Ph, gv.ta = true;
      gv.B = dO(b0, h), gv.ldb = ld_o, gv.stride_b = bs_o;
      gv.C = const_cast<void*>(d.v(b0, h));
      run_gemm(gv);
      Gemm gq = g;  // dQ += dS K
      gq.A = dSh;
      gq.B = a.k(b0, h), gq.ldb = a.ld_qkv(), gq.stride_b = a.bs_qkv();
      gq.C = const_cast<void*>(d.q(b0, h));
      run_gemm(gq);
      Gemm gk = g;  // dK += dS^T Q
      gk.A = dSh, gk.ta = true;
      gk.B = a.q(b0, h), gk.ldb = a.ld_qkv(), gk.stride_b = a.bs_qkv();
      gk.C = const_cast<void*>(d.k(b0, h));
      run_gemm(gk);
    }
  }
}

// The GEMM path runs when all attention tensors share one dtype (F32 or BF16) and, under Auto,
// for sequences long enough for tensor cores to pay off.
bool use_gemm_attention(const AttnShape& s, std::initializer_list<const Tensor*> ts) {
  AttentionImpl impl = attention_impl();
  if (impl == AttentionImpl::Flash) return false;
  // Cudnn where cuDNN could not run falls back as Auto does.
  if ((impl == AttentionImpl::Auto || impl == AttentionImpl::Cudnn) && s.T < 128) return false;
  DType dt = (*ts.begin())->dtype();
  for (const Tensor* t : ts)
    if (t->dtype() != dt || !t->is_contiguous()) return false;
  return dt == DType::F32 || dt == DType::BF16;
}

// Head dims with a compile-time specialization (the DiT^DH ones); any other D <= 256 runs a
// generic instantiation with a runtime D.
template <bool Fwd>
void dispatch_head_dim(const AttnShape& s, Ptr qkv, Ptr out, float* lse, Ptr dout,
                       const float* delta, Ptr dqkv, double scale) {
  auto run = [&](auto dp, auto dc) {
    constexpr int DP = decltype(dp)::value, DC = decltype(dc)::value;
    if constexpr (Fwd)
      launch_fwd<DP, DC>(s, qkv, out, lse, scale);
    else
      launch_bwd<DP, DC>(s, qkv, dout, lse, delta, dqkv, scale);
  };
  using std::integral_constant;
  switch (s.D) {
    case 24:
      return run(integral_constant<int, 1>{}, integral_constant<int, 24>{});
    case 64:
      return run(integral_constant<int, 2>{}, integral_constant<int, 64>{});
    case 72:
      return run(integral_constant<int, 3>{}, integral_constant<int, 72>{});
    case 128:
      return run(integral_constant<int, 4>{}, integral_constant<int, 128>{});
    default:
      break;
  }
  RAE_CHECK(s.D >= 1 && s.D <= 256, "cuda attention: head dim ", s.D, " not in 1..256");
  if (s.D <= 32) return run(integral_constant<int, 1>{}, integral_constant<int, 0>{});
  if (s.D <= 64) return run(integral_constant<int, 2>{}, integral_constant<int, 0>{});
  if (s.D <= 128) return run(integral_constant<int, 4>{}, integral_constant<int, 0>{});
  return run(integral_constant<int, 8>{}, integral_constant<int, 0>{});
}

// ---- softmax -------------------------------------------------------------------------------

__global__ void softmax_fwd_kernel(Ptr out, Ptr x, int64_t N, int64_t C) {
  int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (n >= N) return;
  int64_t base = n * C;
  float mx = -INFINITY;
  for (int64_t c = lane; c < C; c += 32) mx = fmaxf(mx, x.ld(base + c));
  mx = warp_max(mx);
  float s = 0.f;
  for (int64_t c = lane; c < C; c += 32) s += expf(x.ld(base + c) - mx);
  float inv = 1.f / warp_sum(s);
  for (int64_t c = lane; c < C; c += 32) out.st(base + c, expf(x.ld(base + c) - mx) * inv);
}

__global__ void softmax_bwd_kernel(Ptr dx, Ptr dout, Ptr out, int64_t N, int64_t C) {
  int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (n >= N) return;
  int64_t base = n * C;
  float dot = 0.f;
  for (int64_t c = lane; c < C; c += 32) dot += dout.ld(base + c) * out.ld(base + c);
  dot = warp_sum(dot);
  for (int64_t c = lane; c < C; c += 32) {
    float y = out.ld(base + c);
    dx.add(base + c, y * (dout.ld(base + c) - dot));
  }
}

// ---- RoPE ----------------------------------------------------------------------------------

// Blocks over tokens (b, t); threads over (part in {q, k}, h, pair i): elements 2i, 2i + 1.
__global__ void rope_kernel(Ptr qkv, Ptr cosv, Ptr sinv, int64_t B, int64_t T, int64_t H, int64_t D,
                            bool backward) {
  const int half = static_cast<int>(D / 2), per_part = static_cast<int>(H) * half;
  for (int64_t bt = blockIdx.x; bt < B * T; bt += gridDim.x) {
    const int64_t t = bt % T;
    for (int j = threadIdx.x; j < 2 * per_part; j += blockDim.x) {
      int part = j / per_part, rem = j - part * per_part, h = rem / half, pi = rem - h * half;
      int64_t off = ((bt * 3 + part) * H + h) * D + 2 * pi;
      int64_t co = t * D + 2 * pi;
      float c0 = cosv.ld(co), c1 = cosv.ld(co + 1), s0 = sinv.ld(co), s1 = sinv.ld(co + 1);
      float x0 = qkv.ld(off), x1 = qkv.ld(off + 1);
      if (!backward) {  // (x0, x1) -> (x0 c0 - x1 s0, x1 c1 + x0 s1)
        qkv.st(off, x0 * c0 - x1 * s0);
        qkv.st(off + 1, x1 * c1 + x0 * s1);
      } else {  // the transpose of that 2x2 map
        qkv.st(off, x0 * c0 + x1 * s1);
        qkv.st(off + 1, -x0 * s0 + x1 * c1);
      }
    }
  }
}

void rope_run(const Tensor& qkv, const Tensor& cos, const Tensor& sin, bool backward,
              const char* op) {
  AttnShape s = attn_shape(qkv, op);
  RAE_CHECK(s.D % 2 == 0, op, ": head dim ", s.D, " is odd");
  check_shape(cos, {s.T, s.D}, op, "cos");
  check_shape(sin, {s.T, s.D}, op, "sin");
  int64_t n = s.B * s.T * 2 * s.H * (s.D / 2);
  if (n == 0) return;
  rope_kernel<<<grid_rows(s.B * s.T), threads_for_cols(s.H * s.D), 0, cur_stream()>>>(
      ptr(qkv, op, "qkv"), ptr(cos, op, "cos"), ptr(sin, op, "sin"), s.B, s.T, s.H, s.D, backward);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace

void softmax_forward(const Tensor& out, const Tensor& x) {
  const char* op = "cuda::softmax_forward";
  require(x, op, "x");
  int64_t C = last_dim(x), N = x.numel() / std::max<int64_t>(C, 1);
  require(out, op, "out");
  require_numel(out, x.numel(), op, "out");
  if (x.numel() == 0) return;
  softmax_fwd_kernel<<<(unsigned)((N + 7) / 8), 256, 0, cur_stream()>>>(ptr(out, op, "out"),
                                                                        ptr(x, op, "x"), N, C);
  RAE_CUDA_LAUNCHED(op);
}

void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& out) {
  const char* op = "cuda::softmax_backward";
  if (!dx.defined()) return;
  require(out, op, "out");
  require(dout, op, "dout");
  int64_t C = last_dim(out), N = out.numel() / std::max<int64_t>(C, 1);
  require_numel(dx, out.numel(), op, "dx");
  require_numel(dout, out.numel(), op, "dout");
  if (out.numel() == 0) return;
  softmax_bwd_kernel<<<(unsigned)((N + 7) / 8), 256, 0, cur_stream()>>>(
      ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(out, op, "out"), N, C);
  RAE_CUDA_LAUNCHED(op);
}

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, double scale) {
  const char* op = "cuda::attention_forward";
  AttnShape s = attn_shape(qkv, op);
  check_shape(out, {s.B, s.T, s.H, s.D}, op, "out");
  check_shape(lse, {s.B, s.H, s.T}, op, "lse");
  float* lp = f32_ptr(lse, op, "lse");
  Ptr q = ptr(qkv, op, "qkv"), o = ptr(out, op, "out");
  if (s.B * s.T * s.H == 0) return;
  if (fused_attention_forward(out, lp, qkv, scale)) return;  // cuDNN (Auto / Cudnn), if it can
  if (use_gemm_attention(s, {&qkv, &out})) return gemm_attention_forward(s, out, lp, qkv, scale);
  dispatch_head_dim<true>(s, q, o, lp, Ptr{}, nullptr, Ptr{}, scale);
}

void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                        const Tensor& out, const Tensor& lse, double scale, GradMode mode) {
  const char* op = "cuda::attention_backward";
  if (!dqkv.defined()) return;
  AttnShape s = attn_shape(qkv, op);
  check_shape(dqkv, qkv.shape(), op, "dqkv");
  check_shape(dout, {s.B, s.T, s.H, s.D}, op, "dout");
  check_shape(out, {s.B, s.T, s.H, s.D}, op, "out");
  check_shape(lse, {s.B, s.H, s.T}, op, "lse");
  const float* lp = f32_ptr(lse, op, "lse");
  Ptr q = ptr(qkv, op, "qkv"), dq = ptr(dqkv, op, "dqkv"), dO = ptr(dout, op, "dout"),
      o = ptr(out, op, "out");
  int64_t rows = s.B * s.T * s.H;
  if (rows == 0) return;
  const bool overwrite = mode == GradMode::Overwrite;
  if (fused_attention_backward(dqkv, dout, qkv, out, lp, scale, overwrite)) return;
  Tensor delta = Tensor::empty({s.B, s.H, s.T}, DType::F32, qkv.device());
  attn_delta_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, cur_stream()>>>(
      dO, o, static_cast<float*>(delta.raw()), s.B, s.T, s.H, s.D);
  RAE_CUDA_LAUNCHED(op);
  const float* dp = static_cast<const float*>(delta.raw());
  if (use_gemm_attention(s, {&qkv, &dqkv, &dout, &out}))
    return gemm_attention_backward(s, dqkv, dout, qkv, lp, dp, scale, overwrite);
  if (overwrite) zero_grad_buffer(dqkv);  // the flash kernel accumulates
  dispatch_head_dim<false>(s, q, o, const_cast<float*>(lp), dO, dp, dq, scale);
}

void rope_apply(const Tensor& qkv, const Tensor& cos, const Tensor& sin) {
  rope_run(qkv, cos, sin, false, "cuda::rope_apply");
}

void rope_apply_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin) {
  rope_run(dqkv, cos, sin, true, "cuda::rope_apply_backward");
}

}  // namespace rae::ops::cuda
