// Vectorised SwiGLU, gated residuals and axpy (see fast_paths.cuh): 16-byte loads and stores,
// F32 math. The gate backward computes dy and the per-group dgate partial sums in one pass over
// dres and y (chunks of rows within one conditioning group; chunk partials summed in a fixed
// order by chunk_sum), where the scalar path read them twice with 2-byte loads.
#include "ops/cuda/fast_paths.cuh"
#include "ops/cuda/rowvec.cuh"

namespace rae::ops::cuda_detail {

namespace {

__device__ __forceinline__ float sigmoid_fast(float x) {
  return 1.f / (1.f + expf(-x));
}

// Vector v of rows of G vectors: row v / G, vector v % G.
#define RAE_VEC_LOOP(v, total)                                                  \
  for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < (total); \
       v += (int64_t)gridDim.x * blockDim.x)

template <class T>
__global__ void swiglu_fwd_vec(T* out, int64_t ld_o, const T* x12, int64_t ld_x, int64_t N,
                               int64_t H) {
  constexpr int V = kVec<T>;
  const int64_t G = H / V;
  RAE_VEC_LOOP(v, N * G) {
    const int64_t r = v / G, c = (v - r * G) * V;
    float a[V], b[V], o[V];
    load_vec(x12 + r * ld_x + c, a);
    load_vec(x12 + r * ld_x + H + c, b);
#pragma unroll
    for (int e = 0; e < V; ++e) o[e] = a[e] * sigmoid_fast(a[e]) * b[e];
    store_vec(out + r * ld_o + c, o);
  }
}

template <class T>
__global__ void swiglu_bwd_vec(T* dx12, int64_t ld_d, const T* dout, int64_t ld_o, const T* x12,
                               int64_t ld_x, int64_t N, int64_t H, bool overwrite) {
  constexpr int V = kVec<T>;
  const int64_t G = H / V;
  RAE_VEC_LOOP(v, N * G) {
    const int64_t r = v / G, c = (v - r * G) * V;
    float a[V], b[V], g[V], da[V], db[V];
    load_vec(x12 + r * ld_x + c, a);
    load_vec(x12 + r * ld_x + H + c, b);
    load_vec(dout + r * ld_o + c, g);
    if (overwrite) {  // GradMode::Overwrite: dx12 is not read
#pragma unroll
      for (int e = 0; e < V; ++e) da[e] = db[e] = 0.f;
    } else {
      load_vec(dx12 + r * ld_d + c, da);
      load_vec(dx12 + r * ld_d + H + c, db);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float s = sigmoid_fast(a[e]);
      da[e] += g[e] * b[e] * s * (1.f + a[e] * (1.f - s));
      db[e] += g[e] * a[e] * s;
    }
    store_vec(dx12 + r * ld_d + c, da);
    store_vec(dx12 + r * ld_d + H + c, db);
  }
}

template <class T>
__global__ void gate_fwd_vec(T* x, int64_t ld_x, const T* y, int64_t ld_y, Ptr gate, int64_t N,
                             int64_t C, int64_t rpp) {
  constexpr int V = kVec<T>;
  const int64_t G = C / V;
  RAE_VEC_LOOP(v, N * G) {
    const int64_t r = v / G, c = (v - r * G) * V, p = r / rpp;
    float xv[V], yv[V];
    load_vec(x + r * ld_x + c, xv);
    load_vec(y + r * ld_y + c, yv);
#pragma unroll
    for (int e = 0; e < V; ++e) xv[e] += gate.ld2(p, c + e, C) * yv[e];
    store_vec(x + r * ld_x + c, xv);
  }
}

// Block = chunk of rows [r0, r0 + chunk) within one group (rpp > 1) or any rows (rpp = 1: dgate
// per row, written directly); thread t: vectors t, t + blockDim, ... of the row.
template <class T>
__global__ void gate_bwd_vec(T* dy, int64_t ld_dy, const T* dres, int64_t ld_r, const T* y,
                             int64_t ld_y, Ptr gate, Ptr dgate, float* part, int64_t N, int64_t C,
                             int64_t rpp, int64_t chunk, bool overwrite) {
  constexpr int V = kVec<T>;
  const int64_t G = C / V;
  const int64_t r0 = blockIdx.x * chunk;
  const int64_t r1 = r0 + chunk < N ? r0 + chunk : N;
  for (int64_t j = threadIdx.x; j < G; j += blockDim.x) {
    const int64_t c = j * V;
    float acc[V], gv[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      acc[e] = 0.f;
      gv[e] = rpp > 1 ? gate.ld2(r0 / rpp, c + e, C) : 0.f;
    }
    for (int64_t n = r0; n < r1; ++n) {
      float d[V], yv[V];
      load_vec(dres + n * ld_r + c, d);
      if (dy) {
        float o[V];
        if (overwrite) {  // GradMode::Overwrite: dy is not read
#pragma unroll
          for (int e = 0; e < V; ++e) o[e] = 0.f;
        } else {
          load_vec(dy + n * ld_dy + c, o);
        }
#pragma unroll
        for (int e = 0; e < V; ++e) o[e] += (rpp > 1 ? gv[e] : gate.ld2(n, c + e, C)) * d[e];
        store_vec(dy + n * ld_dy + c, o);
      }
      if (dgate.valid()) {
        load_vec(y + n * ld_y + c, yv);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          if (rpp > 1)
            acc[e] += d[e] * yv[e];
          else if (overwrite)
            dgate.st2(n, c + e, C, d[e] * yv[e]);
          else
            dgate.add2(n, c + e, C, d[e] * yv[e]);
        }
      }
    }
    if (part)
#pragma unroll
      for (int e = 0; e < V; ++e) part[blockIdx.x * C + c + e] = acc[e];
  }
}

template <class T>
__global__ void axpy_vec(T* y, const T* x, float alpha, int64_t nv) {
  constexpr int V = kVec<T>;
  RAE_VEC_LOOP(v, nv) {
    float a[V], b[V];
    load_vec(y + v * V, a);
    load_vec(x + v * V, b);
#pragma unroll
    for (int e = 0; e < V; ++e) a[e] += alpha * b[e];
    store_vec(y + v * V, a);
  }
}

bool vec_dtype(DType dt) {
  return dt == DType::BF16 || dt == DType::F32;
}

}  // namespace

bool fast_swiglu_forward(const Tensor& out, const Tensor& x12) {
  if (!fast_path("elementwise") || !vec_dtype(x12.dtype())) return false;
  const int64_t H2 = last_dim(x12), H = H2 / 2, N = H > 0 ? x12.numel() / H2 : 0;
  Rows o, x;
  DType dt = x12.dtype();
  if (N == 0 || !vec_rows(x12, dt, H2, &x) || !vec_rows(out, dt, H, &o) || !o.p) return false;
  if (H % (16 / (int64_t)dtype_size(dt)) != 0) return false;  // the second half's alignment
  const int64_t nv = N * H / (16 / (int64_t)dtype_size(dt));
  if (dt == DType::BF16)
    swiglu_fwd_vec<__nv_bfloat16><<<grid_1d(nv), 256, 0, cur_stream()>>>(
        static_cast<__nv_bfloat16*>(o.p), o.ld, static_cast<const __nv_bfloat16*>(x.p), x.ld, N, H);
  else
    swiglu_fwd_vec<float><<<grid_1d(nv), 256, 0, cur_stream()>>>(
        static_cast<float*>(o.p), o.ld, static_cast<const float*>(x.p), x.ld, N, H);
  RAE_CUDA_LAUNCHED("cuda::swiglu_forward (vectorised)");
  return true;
}

bool fast_swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12,
                          bool overwrite) {
  if (!fast_path("elementwise") || !vec_dtype(x12.dtype())) return false;
  const int64_t H2 = last_dim(x12), H = H2 / 2, N = H > 0 ? x12.numel() / H2 : 0;
  Rows d, g, x;
  DType dt = x12.dtype();
  if (N == 0 || !vec_rows(x12, dt, H2, &x) || !vec_rows(dx12, dt, H2, &d) || !d.p ||
      !vec_rows(dout, dt, H, &g) || !g.p)
    return false;
  if (H % (16 / (int64_t)dtype_size(dt)) != 0) return false;
  const int64_t nv = N * H / (16 / (int64_t)dtype_size(dt));
  if (dt == DType::BF16) {
    using B = __nv_bfloat16;
    swiglu_bwd_vec<B><<<grid_1d(nv), 256, 0, cur_stream()>>>(
        static_cast<B*>(d.p), d.ld, static_cast<const B*>(g.p), g.ld, static_cast<const B*>(x.p),
        x.ld, N, H, overwrite);
  } else {
    swiglu_bwd_vec<float><<<grid_1d(nv), 256, 0, cur_stream()>>>(
        static_cast<float*>(d.p), d.ld, static_cast<const float*>(g.p), g.ld,
        static_cast<const float*>(x.p), x.ld, N, H, overwrite);
  }
  RAE_CUDA_LAUNCHED("cuda::swiglu_backward (vectorised)");
  return true;
}

bool fast_gate_forward(const Tensor& x, const Tensor& y, const Tensor& gate, const ParamRows& pr) {
  if (!fast_path("elementwise") || !vec_dtype(x.dtype())) return false;
  const int64_t C = last_dim(x), N = C > 0 ? x.numel() / C : 0;
  Rows xr, yr;
  DType dt = x.dtype();
  if (N == 0 || !vec_rows(x, dt, C, &xr) || !vec_rows(y, dt, C, &yr) || !yr.p) return false;
  Ptr g = ptr(gate, "cuda::gate_residual_forward", "gate");
  const int64_t nv = N * C / (16 / (int64_t)dtype_size(dt));
  if (dt == DType::BF16) {
    using B = __nv_bfloat16;
    gate_fwd_vec<B><<<grid_1d(nv), 256, 0, cur_stream()>>>(static_cast<B*>(xr.p), xr.ld,
                                                           static_cast<const B*>(yr.p), yr.ld, g, N,
                                                           C, pr.rows_per_param);
  } else {
    gate_fwd_vec<float><<<grid_1d(nv), 256, 0, cur_stream()>>>(static_cast<float*>(xr.p), xr.ld,
                                                               static_cast<const float*>(yr.p),
                                                               yr.ld, g, N, C, pr.rows_per_param);
  }
  RAE_CUDA_LAUNCHED("cuda::gate_residual_forward (vectorised)");
  return true;
}

bool fast_gate_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres, const Tensor& y,
                        const Tensor& gate, const ParamRows& pr, bool overwrite) {
  if (!fast_path("elementwise") || !vec_dtype(dres.dtype())) return false;
  const int64_t C = last_dim(dres), N = C > 0 ? dres.numel() / C : 0;
  const char* op = "cuda::gate_residual_backward";
  DType dt = dres.dtype();
  Rows dyr, rr, yr;
  if (N == 0 || !vec_rows(dres, dt, C, &rr) || !vec_rows(dy, dt, C, &dyr)) return false;
  if (dgate.defined() && (!vec_rows(y, dt, C, &yr) || !yr.p)) return false;
  const int64_t rpp = pr.rows_per_param;
  if (rpp > 1 && pr.param_rows > 65535) return false;
  const int64_t chunk = chunk_rows_for(rpp, 32);
  const int64_t chunks = (N + chunk - 1) / chunk;
  Ptr g = ptr(gate, op, "gate"), dg = ptr(dgate, op, "dgate");
  Tensor part;
  float* pp = nullptr;
  if (dgate.defined() && rpp > 1) {
    part = Tensor::empty({chunks * C}, DType::F32, dres.device());
    pp = static_cast<float*>(part.raw());
  }
  const int64_t G = C / (16 / (int64_t)dtype_size(dt));
  const int threads =
      static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, (G + 31) / 32 * 32)));
  if (dt == DType::BF16) {
    using B = __nv_bfloat16;
    gate_bwd_vec<B><<<(unsigned)chunks, threads, 0, cur_stream()>>>(
        static_cast<B*>(dyr.p), dyr.ld, static_cast<const B*>(rr.p), rr.ld,
        static_cast<const B*>(yr.p), yr.ld, g, dg, pp, N, C, rpp, chunk, overwrite);
  } else {
    gate_bwd_vec<float><<<(unsigned)chunks, threads, 0, cur_stream()>>>(
        static_cast<float*>(dyr.p), dyr.ld, static_cast<const float*>(rr.p), rr.ld,
        static_cast<const float*>(yr.p), yr.ld, g, dg, pp, N, C, rpp, chunk, overwrite);
  }
  RAE_CUDA_LAUNCHED("cuda::gate_residual_backward (vectorised)");
  if (pp) chunk_sum(pp, rpp / chunk, pr.param_rows, C, dg, overwrite);
  return true;
}

bool fast_axpy(const Tensor& y, const Tensor& x, float alpha) {
  if (!fast_path("elementwise") || !vec_dtype(y.dtype()) || x.dtype() != y.dtype()) return false;
  if (!y.is_contiguous() || !x.is_contiguous()) return false;
  const int64_t V = 16 / (int64_t)dtype_size(y.dtype()), n = y.numel();
  if (n == 0 || n % V != 0) return false;
  if ((reinterpret_cast<uintptr_t>(y.raw()) & 15) || (reinterpret_cast<uintptr_t>(x.raw()) & 15))
    return false;
  if (y.dtype() == DType::BF16)
    axpy_vec<__nv_bfloat16><<<grid_1d(n / V), 256, 0, cur_stream()>>>(
        static_cast<__nv_bfloat16*>(y.raw()), static_cast<const __nv_bfloat16*>(x.raw()), alpha,
        n / V);
  else
    axpy_vec<float><<<grid_1d(n / V), 256, 0, cur_stream()>>>(
        static_cast<float*>(y.raw()), static_cast<const float*>(x.raw()), alpha, n / V);
  RAE_CUDA_LAUNCHED("cuda::add_ (vectorised)");
  return true;
}

}  // namespace rae::ops::cuda_detail
