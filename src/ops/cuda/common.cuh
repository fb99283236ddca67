// Shared helpers of the CUDA op kernels: error checks, a dtype-tagged element pointer (F32 or
// BF16, read and written as float so every kernel accumulates in F32), launch sizes and
// warp/block reductions. Every kernel runs on rae::cur_stream() (tensor/cuda_stream.cuh): the
// legacy default stream, in order with the copies of tensor/cuda_memory, unless a CUDA graph
// capture (train/graph_step.cpp) chose its own stream.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "ops/grad_mode.h"
#include "tensor/cuda_stream.cuh"
#include "tensor/tensor.h"

#define RAE_CUDA_CHECK(expr)                                                           \
  do {                                                                                 \
    cudaError_t e_ = (expr);                                                           \
    RAE_CHECK(e_ == cudaSuccess, "CUDA error ", cudaGetErrorString(e_), " in " #expr); \
  } while (0)

// Checks the launch of the kernel just queued (configuration errors show up here).
#define RAE_CUDA_LAUNCHED(name)                         \
  RAE_CHECK(cudaPeekAtLastError() == cudaSuccess, name, \
            ": kernel launch failed: ", cudaGetErrorString(cudaGetLastError()))

namespace rae::ops::cuda_detail {

enum ElemKind : int { kF32 = 0, kBF16 = 1 };

// An element pointer tagged with its storage type, addressed by the LOGICAL (contiguous,
// row-major) element index. Tensors whose rows are uniformly strided (a chunk of a wider tensor,
// as adaLN's shift/scale/gate are; see op_checks.h) carry their row length `cols` and row stride
// `stride`; contiguous tensors have cols = stride = 1, which maps every index to itself. The tags
// are uniform across a kernel, so the branches cost next to nothing next to the memory access.
struct Ptr {
  void* p = nullptr;
  int kind = kF32;
  int64_t cols = 1, stride = 1;
  __device__ __forceinline__ int64_t phys(int64_t i) const {
    if (stride == cols) return i;
    int64_t r = i / cols;
    return r * stride + (i - r * cols);
  }
  __device__ __forceinline__ float ld_(int64_t i) const {
    if (kind == kBF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    return static_cast<const float*>(p)[i];
  }
  __device__ __forceinline__ float ld(int64_t i) const { return ld_(phys(i)); }
  __device__ __forceinline__ void st(int64_t i, float v) const {
    i = phys(i);
    if (kind == kBF16)
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v);
    else
      static_cast<float*>(p)[i] = v;
  }
  __device__ __forceinline__ void add(int64_t i, float v) const {
    i = phys(i);
    if (kind == kBF16) {
      __nv_bfloat16* q = static_cast<__nv_bfloat16*>(p) + i;
      *q = __float2bfloat16(__bfloat162float(*q) + v);
    } else {
      static_cast<float*>(p)[i] += v;
    }
  }
  // Element (r, c) of the tensor seen as rows of C = its last dim (no division, unlike the
  // logical-index accessors on strided tensors).
  __device__ __forceinline__ int64_t at(int64_t r, int64_t c, int64_t C) const {
    return stride == cols ? r * C + c : r * stride + c;
  }
  __device__ __forceinline__ float ld2(int64_t r, int64_t c, int64_t C) const {
    return ld_(at(r, c, C));
  }
  __device__ __forceinline__ void st2(int64_t r, int64_t c, int64_t C, float v) const {
    int64_t i = at(r, c, C);
    if (kind == kBF16)
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v);
    else
      static_cast<float*>(p)[i] = v;
  }
  __device__ __forceinline__ void add2(int64_t r, int64_t c, int64_t C, float v) const {
    st2(r, c, C, ld2(r, c, C) + v);
  }
  __host__ __device__ bool valid() const { return p != nullptr; }
};

// Grid-stride loop over i in [0, n).
#define RAE_GRID_LOOP(i, n)                                                 \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
       i += (int64_t)gridDim.x * blockDim.x)

// Row-structured grid: blocks stride over rows, threads over the columns of a row.
#define RAE_ROW_LOOP(r, c, N, C)                        \
  for (int64_t r = blockIdx.x; r < (N); r += gridDim.x) \
    for (int64_t c = threadIdx.x; c < (C); c += blockDim.x)

inline int grid_rows(int64_t N) {
  return static_cast<int>(N < 1 ? 1 : (N > 65536 ? 65536 : N));
}
inline int threads_for_cols(int64_t C) {
  return C >= 256 ? 256 : (C > 64 ? 128 : 64);
}

// A Ptr to a CUDA tensor (F32 or BF16, contiguous or row-strided), or a null Ptr for an
// undefined tensor. `op` and `arg` name the call in errors.
inline Ptr ptr(const Tensor& t, const char* op, const char* arg) {
  if (!t.defined()) return Ptr{};
  RAE_CHECK(t.is_cuda(), op, ": argument '", arg, "' is ", t.str(), ", expected a CUDA tensor");
  RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, op, ": argument '", arg,
            "' has dtype ", dtype_name(t.dtype()), "; CUDA ops take f32 or bf16");
  Ptr q{t.raw(), t.dtype() == DType::BF16 ? kBF16 : kF32, 1, 1};
  if (!t.is_contiguous()) {
    // Rows of the last dim, uniformly strided: the leading dims (of extent > 1) must nest, as
    // check::row_strided requires (written on raw arrays: GCC misreads Shape's negative index).
    const int nd = t.ndim();
    const int64_t* dims = t.shape().begin();
    const int64_t* strides = t.strides().begin();
    bool ok = nd >= 1 && (dims[nd - 1] == 1 || strides[nd - 1] == 1);
    int64_t row_stride = -1, inner_stride = -1, inner_extent = 0;
    for (int i = nd - 2; ok && i >= 0; --i) {
      if (dims[i] == 1) continue;
      if (inner_stride < 0) {
        row_stride = strides[i];
        ok = row_stride >= dims[nd - 1];
      } else {
        ok = strides[i] == inner_stride * inner_extent;
      }
      inner_stride = strides[i];
      inner_extent = dims[i];
    }
    RAE_CHECK(ok, op, ": argument '", arg, "' ", t.str(),
              " must be contiguous or have uniformly strided rows");
    q.cols = dims[nd - 1];
    q.stride = row_stride < 0 ? q.cols : row_stride;
    if (q.cols == q.stride) q.cols = q.stride = 1;
  }
  return q;
}

inline void require(const Tensor& t, const char* op, const char* arg) {
  RAE_CHECK(t.defined(), op, ": argument '", arg, "' is undefined");
}

inline void require_numel(const Tensor& t, int64_t n, const char* op, const char* arg) {
  if (!t.defined()) return;
  RAE_CHECK(t.numel() == n, op, ": argument '", arg, "' has ", t.numel(), " elements (", t.str(),
            "), expected ", n);
}

inline float* f32_ptr(const Tensor& t, const char* op, const char* arg) {
  require(t, op, arg);
  RAE_CHECK(t.is_cuda() && t.is_contiguous() && t.dtype() == DType::F32, op, ": argument '", arg,
            "' must be a contiguous f32 CUDA tensor, got ", t.str());
  return static_cast<float*>(t.raw());
}

inline int current_device() {
  int d = 0;
  RAE_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

inline int64_t last_dim(const Tensor& t) {
  return t.ndim() == 0 ? 1 : t.dim(t.ndim() - 1);
}

inline int grid_1d(int64_t n, int threads = 256) {
  int64_t g = (n + threads - 1) / threads;
  if (g < 1) g = 1;
  return static_cast<int>(g > 8192 ? 8192 : g);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `shared` must hold 32 floats; the function synchronizes so it can be called repeatedly.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float t = lane < nwarps ? shared[lane] : 0.f;
  return warp_sum(t);
}

// Per-row parameter indexing for (B, C) per-sample or (B, T, C) per-token conditioning of rows
// of x (N, C): the parameter row of x row n is n / rows_per_param.
struct ParamRows {
  int64_t rows_per_param = 1;
  int64_t param_rows = 0;
};
inline ParamRows param_rows_for(const Tensor& param, int64_t N, int64_t C, const char* op,
                                const char* arg) {
  RAE_CHECK(param.numel() % C == 0, op, ": '", arg, "' ", param.str(), " is not rows of ", C);
  int64_t P = param.numel() / C;
  RAE_CHECK(P > 0 && N % P == 0, op, ": '", arg, "' has ", P, " rows, which does not divide the ",
            N, " rows of x");
  return ParamRows{N / P, P};
}

// Grouped column reduction, deterministic and atomic-free: for each of NV outputs,
// out_v[p, c] += sum over rows n of group p (rows p*R .. p*R+R-1) of f(n, c)_v, where the functor
// fills `acc[NV]` by `f(n, c, acc)` (adding). Groups are split into row chunks when there are few
// of them; chunk partial sums land in a scratch buffer and are added in a fixed order.
template <int NV, class F>
__global__ void col_reduce_kernel(F f, int64_t P, int64_t R, int64_t C, int64_t rows_per_chunk,
                                  float* partial, Ptr o0, Ptr o1, Ptr o2) {
  int64_t p = blockIdx.x, k = blockIdx.y, chunks = gridDim.y;
  int64_t n0 = p * R + k * rows_per_chunk;
  int64_t n1 = p * R + R;
  if (n0 + rows_per_chunk < n1) n1 = n0 + rows_per_chunk;
  Ptr outs[3] = {o0, o1, o2};
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc[NV];
#pragma unroll
    for (int v = 0; v < NV; ++v) acc[v] = 0.f;
    for (int64_t n = n0; n < n1; ++n) f(n, c, acc);
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      if (chunks == 1) {
        if (outs[v].valid()) outs[v].add2(p, c, C, acc[v]);
      } else {
        partial[((v * chunks + k) * P + p) * C + c] = acc[v];
      }
    }
  }
}

template <int NV>
__global__ void col_finish_kernel(const float* partial, int64_t chunks, int64_t P, int64_t C,
                                  Ptr o0, Ptr o1, Ptr o2) {
  Ptr outs[3] = {o0, o1, o2};
  int64_t total = P * C;
  RAE_ROW_LOOP(p, c, P, C) {
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      if (!outs[v].valid()) continue;
      float s = 0.f;
      for (int64_t k = 0; k < chunks; ++k) s += partial[(v * chunks + k) * total + p * C + c];
      outs[v].add2(p, c, C, s);
    }
  }
}

template <int NV, class F>
void col_reduce(F f, int64_t P, int64_t R, int64_t C, Ptr o0, Ptr o1 = Ptr{}, Ptr o2 = Ptr{}) {
  static_assert(NV >= 1 && NV <= 3, "col_reduce: 1 to 3 outputs");
  if (P == 0 || R == 0 || C == 0) return;
  int64_t chunks = 1;
  if (P < 264) chunks = (264 + P - 1) / P;
  if (chunks > R) chunks = R;
  if (chunks > 65535) chunks = 65535;
  int64_t rpc = (R + chunks - 1) / chunks;
  chunks = (R + rpc - 1) / rpc;
  Tensor scratch;
  float* partial = nullptr;
  if (chunks > 1) {
    scratch = Tensor::empty({NV * chunks * P * C}, DType::F32, Device::cuda(current_device()));
    partial = static_cast<float*>(scratch.raw());
  }
  RAE_CHECK(P <= 2147483647, "col_reduce: too many groups");
  int threads = C >= 256 ? 256 : (C >= 128 ? 128 : 64);
  col_reduce_kernel<NV, F><<<dim3((unsigned)P, (unsigned)chunks), threads, 0, cur_stream()>>>(
      f, P, R, C, rpc, partial, o0, o1, o2);
  RAE_CUDA_LAUNCHED("col_reduce");
  if (chunks > 1) {
    col_finish_kernel<NV>
        <<<grid_rows(P), threads_for_cols(C), 0, cur_stream()>>>(partial, chunks, P, C, o0, o1, o2);
    RAE_CUDA_LAUNCHED("col_finish");
  }
}

}  // namespace rae::ops::cuda_detail
