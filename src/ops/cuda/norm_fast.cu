// Vectorised RMSNorm (+ adaLN modulation) and LayerNorm kernels (see fast_paths.cuh).
//
// Forward: one warp per row, the row held in registers (16-byte loads), so x is read once.
// RMSNorm+modulate backward, restructured for bandwidth: one pass over the rows computes dx and,
// per chunk of rows, partial column sums of dw, dshift and dscale (a chunk never straddles two
// conditioning groups); one deterministic pass then adds the chunk partials in a fixed order.
// dout and x are read once (the old kernels read them three times, with 2-byte loads and one
// column per thread walking the rows serially, which left the memory system mostly idle).
#include "ops/cuda/fast_paths.cuh"
#include "ops/cuda/rowvec.cuh"

namespace rae::ops::cuda_detail {

namespace {

__global__ void chunk_sum_kernel(const float* __restrict__ part, int64_t per, int64_t P, int64_t C,
                                 Ptr out, bool overwrite) {
  __shared__ float s[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x, p = blockIdx.y;
  float acc = 0.f;
  if (c < C)
    for (int64_t k = threadIdx.y; k < per; k += 8) acc += part[(p * per + k) * C + c];
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) t += s[i][threadIdx.x];
    if (overwrite)
      out.st2(p, c, C, t);
    else
      out.add2(p, c, C, t);
  }
}

// ---- forward ---------------------------------------------------------------------------------

// LN: out = (x - mean) * rstd * w + b. Else RMSNorm: out = x * rstd * w * (1 + scale[p]) +
// shift[p]. Undefined w/b/shift/scale are skipped. KV: vectors per lane (ceil(C / V / 32) at
// most). One warp per row, 8 rows per block.
template <class T, int KV, bool LN>
__global__ void __launch_bounds__(256)
    norm_fwd_vec_kernel(T* __restrict__ out, int64_t ld_o, const T* __restrict__ x, int64_t ld_x,
                        Ptr w, Ptr b, Ptr shift, Ptr scale, float* mean, float* rstd, int64_t N,
                        int64_t C, int64_t rpp, float eps) {
  constexpr int V = kVec<T>;
  const int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  const int64_t G = C / V;
  float xv[KV][V];
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < KV; ++k) {
    const int64_t j = lane + 32 * k;
    if (j < G) {
      load_vec(x + n * ld_x + j * V, xv[k]);
#pragma unroll
      for (int e = 0; e < V; ++e) s += LN ? xv[k][e] : xv[k][e] * xv[k][e];
    }
  }
  s = warp_sum(s);
  float mu = 0.f, rs;
  if (LN) {
    mu = s / C;
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < KV; ++k)
      if (lane + 32 * k < G)
#pragma unroll
        for (int e = 0; e < V; ++e) v += (xv[k][e] - mu) * (xv[k][e] - mu);
    rs = rsqrtf(warp_sum(v) / C + eps);
  } else {
    rs = rsqrtf(s / C + eps);
  }
  const int64_t prow = n / rpp;
#pragma unroll
  for (int k = 0; k < KV; ++k) {
    const int64_t j = lane + 32 * k;
    if (j >= G) continue;
    float y[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const int64_t c = j * V + e;
      float t = (xv[k][e] - mu) * rs;
      if (w.valid()) t *= w.ld(c);
      if (b.valid()) t += b.ld(c);
      if (scale.valid()) t *= 1.f + scale.ld2(prow, c, C);
      if (shift.valid()) t += shift.ld2(prow, c, C);
      y[e] = t;
    }
    store_vec(out + n * ld_o + j * V, y);
  }
  if (lane == 0) {
    if (mean) mean[n] = mu;
    if (rstd) rstd[n] = rs;
  }
}

template <class T, bool LN>
bool launch_norm_fwd(const Rows& o, const Rows& xr, Ptr w, Ptr b, Ptr shift, Ptr scale, float* mean,
                     float* rstd, int64_t N, int64_t C, int64_t rpp, float eps) {
  const int64_t G = C / kVec<T>, kv = (G + 31) / 32;
  const unsigned blocks = static_cast<unsigned>((N + 7) / 8);
  auto go = [&](auto kvc) {
    constexpr int KV = decltype(kvc)::value;
    norm_fwd_vec_kernel<T, KV, LN>
        <<<blocks, 256, 0, cur_stream()>>>(static_cast<T*>(o.p), o.ld, static_cast<const T*>(xr.p),
                                           xr.ld, w, b, shift, scale, mean, rstd, N, C, rpp, eps);
    RAE_CUDA_LAUNCHED(LN ? "layernorm (vectorised)" : "rmsnorm (vectorised)");
    return true;
  };
  using std::integral_constant;
  if (kv <= 1) return go(integral_constant<int, 1>{});
  if (kv <= 2) return go(integral_constant<int, 2>{});
  if (kv <= 4) return go(integral_constant<int, 4>{});
  if (kv <= 6) return go(integral_constant<int, 6>{});
  if (kv <= 8) return go(integral_constant<int, 8>{});
  if (kv <= 12) return go(integral_constant<int, 12>{});
  if (kv <= 16) return go(integral_constant<int, 16>{});
  return false;
}

template <bool LN>
bool norm_forward(const Tensor& out, float* mean, float* rstd, const Tensor& x, const Tensor& w,
                  const Tensor& b, const Tensor& shift, const Tensor& scale, int64_t rpp,
                  double eps) {
  if (!fast_path("norm")) return false;
  const int64_t C = last_dim(x), N = C > 0 ? x.numel() / C : 0;
  if (N == 0 || C == 0) return false;
  Rows o, xr;
  DType dt = x.dtype();
  if (!vec_rows(x, dt, C, &xr) || !vec_rows(out, dt, C, &o) || !o.p) return false;
  const char* op = LN ? "cuda::layernorm_forward" : "cuda::rmsnorm_modulate_forward";
  Ptr wp = ptr(w, op, "w"), bp = ptr(b, op, "b"), sh = ptr(shift, op, "shift"),
      sc = ptr(scale, op, "scale");
  if (dt == DType::BF16)
    return launch_norm_fwd<__nv_bfloat16, LN>(o, xr, wp, bp, sh, sc, mean, rstd, N, C, rpp,
                                              (float)eps);
  return launch_norm_fwd<float, LN>(o, xr, wp, bp, sh, sc, mean, rstd, N, C, rpp, (float)eps);
}

// ---- RMSNorm + modulate backward -------------------------------------------------------------

// Block = one chunk of rows [r0, r0 + chunk) (within one conditioning group when rpp > 1), all
// columns: thread t owns the vectors t, t + blockDim, ... (GP of them). Rows go R at a time:
// load, one block reduction for the R row dots, then dx and the column partials.
//   g = dout * (1 + scale) * w, xhat = x * rstd, m = mean(g * xhat)
//   dx += rstd * (g - xhat * m); dw += dout * (1 + scale) * xhat;
//   dshift += dout; dscale += dout * xhat * w.
// Partials: part_*[chunk][C]; with rpp == 1 (per-token conditioning) dshift/dscale are added
// per row directly instead (stored, with ow_mod: GradMode::Overwrite).
template <class T, int GP, int R>
__global__ void __launch_bounds__(256)
    rms_bwd_vec_kernel(const T* __restrict__ dout, int64_t ld_do, const T* __restrict__ x,
                       int64_t ld_x, T* dx, int64_t ld_dx, Ptr w, Ptr scale, Ptr dshift, Ptr dscale,
                       const float* __restrict__ rstd, float* part_dw, float* part_shift,
                       float* part_scale, int64_t N, int64_t C, int64_t rpp, int64_t chunk,
                       bool ow_mod) {
  constexpr int V = kVec<T>;
  __shared__ float red[2][R][32];
  const int64_t G = C / V;
  const int64_t r0 = blockIdx.x * chunk;
  const int64_t r1 = r0 + chunk < N ? r0 + chunk : N;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  const bool per_row = rpp == 1;
  float wv[GP][V], sc[GP][V], adw[GP][V], ash[GP][V], asc[GP][V];
  bool has[GP];
  int64_t c0[GP];
#pragma unroll
  for (int k = 0; k < GP; ++k) {
    const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
    has[k] = j < G;
    c0[k] = j * V;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      wv[k][e] = has[k] && w.valid() ? w.ld(c0[k] + e) : 1.f;
      sc[k][e] =
          has[k] && scale.valid() && !per_row ? 1.f + scale.ld2(r0 / rpp, c0[k] + e, C) : 1.f;
      adw[k][e] = ash[k][e] = asc[k][e] = 0.f;
    }
  }
  // (1 + scale) of column c in row n.
  auto s1 = [&](int k, int e, int64_t n) {
    return per_row && scale.valid() ? 1.f + scale.ld2(n, c0[k] + e, C) : sc[k][e];
  };
  int buf = 0;
  for (int64_t n0 = r0; n0 < r1; n0 += R) {
    float dv[R][GP][V], xv[R][GP][V], dot[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t n = n0 + r;
      dot[r] = 0.f;
#pragma unroll
      for (int k = 0; k < GP; ++k) {
        if (has[k] && n < r1) {
          load_vec(dout + n * ld_do + c0[k], dv[r][k]);
          load_vec(x + n * ld_x + c0[k], xv[r][k]);
#pragma unroll
          for (int e = 0; e < V; ++e) dot[r] += dv[r][k][e] * s1(k, e, n) * wv[k][e] * xv[r][k][e];
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) dv[r][k][e] = xv[r][k][e] = 0.f;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float v = warp_sum(dot[r]);
      if (lane == 0) red[buf][r][warp] = v;
    }
    __syncthreads();
    float tot[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      tot[r] = 0.f;
      for (int i = 0; i < nwarps; ++i) tot[r] += red[buf][r][i];
    }
    buf ^= 1;  // the next step writes the other buffer: no second barrier needed
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t n = n0 + r;
      if (n >= r1) continue;
      const float rs = rstd[n], m = tot[r] * rs / C;
#pragma unroll
      for (int k = 0; k < GP; ++k) {
        if (!has[k]) continue;
        float o[V];
        if (dx) load_vec(dx + n * ld_dx + c0[k], o);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float d = dv[r][k][e], f = s1(k, e, n), xh = xv[r][k][e] * rs;
          o[e] += rs * (d * f * wv[k][e] - xh * m);
          adw[k][e] += d * f * xh;
          if (per_row && ow_mod) {
            if (dshift.valid()) dshift.st2(n, c0[k] + e, C, d);
            if (dscale.valid()) dscale.st2(n, c0[k] + e, C, d * xh * wv[k][e]);
          } else if (per_row) {
            if (dshift.valid()) dshift.add2(n, c0[k] + e, C, d);
            if (dscale.valid()) dscale.add2(n, c0[k] + e, C, d * xh * wv[k][e]);
          } else {
            ash[k][e] += d;
            asc[k][e] += d * xh * wv[k][e];
          }
        }
        if (dx) store_vec(dx + n * ld_dx + c0[k], o);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < GP; ++k) {
    if (!has[k]) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const int64_t i = blockIdx.x * C + c0[k] + e;
      if (part_dw) part_dw[i] = adw[k][e];
      if (part_shift) part_shift[i] = ash[k][e];
      if (part_scale) part_scale[i] = asc[k][e];
    }
  }
}

template <class T>
bool launch_rms_bwd(const Rows& d, const Rows& xr, const Rows& dxr, Ptr w, Ptr scale, Ptr dshift,
                    Ptr dscale, Ptr dw, const float* rstd, int64_t N, int64_t C,
                    const ParamRows& pr, Device dev, bool ow_mod) {
  const int64_t G = C / kVec<T>;
  const int gp = G <= 256 ? 1 : (G <= 512 ? 2 : (G <= 1024 ? 4 : 0));
  if (gp == 0) return false;
  const int64_t rpp = pr.rows_per_param;
  const int64_t chunk = chunk_rows_for(rpp, 64);
  const int64_t chunks = (N + chunk - 1) / chunk;
  const int threads = static_cast<int>(std::max<int64_t>(32, ((G + gp - 1) / gp + 31) / 32 * 32));
  const bool grouped = rpp > 1 && (dshift.valid() || dscale.valid());
  Tensor part = Tensor::empty({3 * chunks * C}, DType::F32, dev);
  float* base = static_cast<float*>(part.raw());
  float* pdw = dw.valid() ? base : nullptr;
  float* psh = grouped && dshift.valid() ? base + chunks * C : nullptr;
  float* psc = grouped && dscale.valid() ? base + 2 * chunks * C : nullptr;
  auto go = [&](auto gpc, auto rc) {
    constexpr int GP = decltype(gpc)::value, R = decltype(rc)::value;
    rms_bwd_vec_kernel<T, GP, R><<<(unsigned)chunks, threads, 0, cur_stream()>>>(
        static_cast<const T*>(d.p), d.ld, static_cast<const T*>(xr.p), xr.ld,
        static_cast<T*>(dxr.p), dxr.ld, w, scale, dshift, dscale, rstd, pdw, psh, psc, N, C, rpp,
        chunk, ow_mod);
    RAE_CUDA_LAUNCHED("cuda::rmsnorm_modulate_backward (vectorised)");
  };
  using std::integral_constant;
  if (gp == 1)
    go(integral_constant<int, 1>{}, integral_constant<int, 2>{});
  else if (gp == 2)
    go(integral_constant<int, 2>{}, integral_constant<int, 1>{});
  else
    go(integral_constant<int, 4>{}, integral_constant<int, 1>{});
  if (pdw) chunk_sum(pdw, chunks, 1, C, dw);
  if (grouped) {
    const int64_t per = rpp / chunk;
    if (psh) chunk_sum(psh, per, pr.param_rows, C, dshift, ow_mod);
    if (psc) chunk_sum(psc, per, pr.param_rows, C, dscale, ow_mod);
  }
  return true;
}

}  // namespace

void chunk_sum(const float* part, int64_t per, int64_t P, int64_t C, Ptr out, bool overwrite) {
  if (!out.valid() || P == 0 || C == 0) return;
  RAE_CHECK(P <= 65535, "chunk_sum: ", P, " output rows exceed the launch grid");
  chunk_sum_kernel<<<dim3((unsigned)((C + 31) / 32), (unsigned)P), dim3(32, 8), 0, cur_stream()>>>(
      part, per, P, C, out, overwrite);
  RAE_CUDA_LAUNCHED("chunk_sum");
}

bool fast_rmsnorm_modulate_forward(const Tensor& out, float* rstd, const Tensor& x, const Tensor& w,
                                   const Tensor& shift, const Tensor& scale, const ParamRows& pr,
                                   double eps) {
  return norm_forward<false>(out, nullptr, rstd, x, w, Tensor(), shift, scale, pr.rows_per_param,
                             eps);
}

bool fast_layernorm_forward(const Tensor& out, float* mean, float* rstd, const Tensor& x,
                            const Tensor& w, const Tensor& b, double eps) {
  return norm_forward<true>(out, mean, rstd, x, w, b, Tensor(), Tensor(), 1, eps);
}

bool fast_rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                                    const Tensor& dscale, const Tensor& dout, const Tensor& x,
                                    const Tensor& w, const Tensor& scale, const float* rstd,
                                    const ParamRows& pr, bool overwrite) {
  if (!fast_path("norm")) return false;
  const int64_t C = last_dim(x), N = C > 0 ? x.numel() / C : 0;
  if (N == 0 || C == 0) return false;
  if (pr.param_rows > 65535 && pr.rows_per_param > 1) return false;
  DType dt = x.dtype();
  Rows d, xr, dxr;
  if (!vec_rows(dout, dt, C, &d) || !vec_rows(x, dt, C, &xr) || !vec_rows(dx, dt, C, &dxr))
    return false;
  const char* op = "cuda::rmsnorm_modulate_backward";
  Ptr wp = ptr(w, op, "w"), sc = ptr(scale, op, "scale"), dsh = ptr(dshift, op, "dshift"),
      dsc = ptr(dscale, op, "dscale"), dwp = ptr(dw, op, "dw");
  if (dt == DType::BF16)
    return launch_rms_bwd<__nv_bfloat16>(d, xr, dxr, wp, sc, dsh, dsc, dwp, rstd, N, C, pr,
                                         x.device(), overwrite);
  return launch_rms_bwd<float>(d, xr, dxr, wp, sc, dsh, dsc, dwp, rstd, N, C, pr, x.device(),
                               overwrite);
}

}  // namespace rae::ops::cuda_detail
