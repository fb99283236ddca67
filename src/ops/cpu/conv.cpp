// CPU channels-last convolution: im2col + OpenBLAS GEMM in oneTBB tasks.
//
// Forward: the output rows (N * OH * OW) are cut into fixed chunks; each task gathers its
// chunk's patches into a (rows, KH * KW * C) buffer and multiplies it by w^T (one GEMM per
// chunk, OpenBLAS held at one thread meanwhile), then applies the bias/ReLU epilogue while the
// rows are in cache. A 1x1 stride-1 unpadded convolution multiplies x's rows directly.
// Backward: dx per image (tasks over images, chunks in order inside an image, so the col2im
// scatter-adds never race and always add in the same order); dw over a FIXED number of row
// groups that depends only on the problem size, each group summing into its own buffer, the
// buffers added in order: results are bit-identical across runs and thread counts.
#include "ops/conv.h"

#include <algorithm>
#include <vector>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// Rows per GEMM chunk: a patch buffer of ~1 MB, between 32 and 1024 rows.
int64_t chunk_rows(int64_t K, size_t elem) {
  int64_t r =
      static_cast<int64_t>((1u << 20) / (elem * static_cast<size_t>(std::max<int64_t>(K, 1))));
  return std::clamp<int64_t>(r, 32, 1024);
}

// Patches of output rows [r0, r1) into col (rows, KH * KW * C), zero where the window leaves
// the image.
template <typename T>
void im2col(const Rows<T>& x, const ConvGeometry& g, int64_t r0, int64_t r1, T* col) {
  const int64_t K = g.patch(), C = g.C, per_image = g.OH * g.OW;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / per_image, rem = r % per_image;
    const int64_t oh = rem / g.OW, ow = rem % g.OW;
    T* dst = col + (r - r0) * K;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.stride_h - g.pad_h + kh;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.stride_w - g.pad_w + kw;
        T* seg = dst + (kh * g.KW + kw) * C;
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) {
          std::fill(seg, seg + C, T(0));
        } else {
          const T* src = x.row((n * g.H + ih) * g.W + iw);
          std::copy(src, src + C, seg);
        }
      }
    }
  }
}

// The patch matrix (rows, K) of output rows [r0, r1): x's own rows for a pointwise conv (out
// row r reads x row r: no copy), else gathered into `col`.
template <typename T>
struct Patches {
  const T* p;
  int64_t ld;
};
template <typename T>
Patches<T> patches(const Rows<T>& x, const ConvGeometry& g, int64_t r0, int64_t r1,
                   std::vector<T>& col) {
  if (g.pointwise()) return {x.row(r0), x.ld};
  const int64_t K = g.patch();
  col.resize(static_cast<size_t>((r1 - r0) * K));
  im2col(x, g, r0, r1, col.data());
  return {col.data(), K};
}

// dx += the patches in dcol (rows [r0, r1) of one image's output), scattered back.
template <typename T>
void col2im_add(const T* dcol, const ConvGeometry& g, int64_t r0, int64_t r1, T* dx) {
  const int64_t K = g.patch(), C = g.C, per_image = g.OH * g.OW;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / per_image, rem = r % per_image;
    const int64_t oh = rem / g.OW, ow = rem % g.OW;
    const T* src = dcol + (r - r0) * K;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.stride_h - g.pad_h + kh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.stride_w - g.pad_w + kw;
        if (iw < 0 || iw >= g.W) continue;
        const T* seg = src + (kh * g.KW + kw) * C;
        T* d = dx + ((n * g.H + ih) * g.W + iw) * C;
        for (int64_t c = 0; c < C; ++c) d[c] += seg[c];
      }
    }
  }
}

template <typename T>
void forward_impl(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                  const ConvGeometry& g) {
  Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
  const T* wp = ptr<T>(w);
  const T* bp = ptr<T>(b);
  const int64_t R = g.N * g.OH * g.OW, K = g.patch(), O = g.O;
  const int64_t chunk = chunk_rows(K, sizeof(T));
  const int64_t nchunks = (R + chunk - 1) / chunk;
  parallel_blocks(nchunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> col;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * chunk, r1 = std::min(R, r0 + chunk), rows = r1 - r0;
      const Patches<T> A = patches(xr, g, r0, r1, col);
      if (bp)
        for (int64_t r = r0; r < r1; ++r) std::copy(bp, bp + O, o.row(r));
      // out rows (rows, O) = A (rows, K) @ w (O, K)^T (+ the bias already in out)
      gemm_rm<T>(false, true, rows, O, K, 1.0, A.p, A.ld, wp, K, bp ? 1.0 : 0.0, o.row(r0), o.ld);
      if (g.relu)
        for (int64_t r = r0; r < r1; ++r) {
          T* y = o.row(r);
          for (int64_t j = 0; j < O; ++j) y[j] = y[j] > T(0) ? y[j] : T(0);
        }
    }
  });
}

template <typename T>
void backward_dx(const Tensor& dx, const Rows<T>& d, const T* wp, const ConvGeometry& g) {
  const int64_t K = g.patch(), O = g.O;
  T* dxp = ptr<T>(dx);
  if (g.pointwise()) {  // dx (R, C) += dout (R, O) @ w (O, C)
    gemm_rm<T>(false, false, d.n, g.C, O, 1.0, d.p, d.ld, wp, K, 1.0, dxp, g.C);
    return;
  }
  const int64_t per_image = g.OH * g.OW;
  const int64_t chunk = std::min(chunk_rows(K, sizeof(T)), per_image);
  parallel_blocks(g.N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<T> dcol(static_cast<size_t>(chunk * K));
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t r0 = n * per_image; r0 < (n + 1) * per_image; r0 += chunk) {
        const int64_t r1 = std::min((n + 1) * per_image, r0 + chunk);
        // dcol (rows, K) = dout rows (rows, O) @ w (O, K)
        gemm_rm<T>(false, false, r1 - r0, K, O, 1.0, d.row(r0), d.ld, wp, K, 0.0, dcol.data(), K);
        col2im_add(dcol.data(), g, r0, r1, dxp);
      }
  });
}

template <typename T>
void backward_dw(const Tensor& dw, const Rows<T>& d, const Rows<T>& xr, const ConvGeometry& g) {
  const int64_t R = d.n, K = g.patch(), O = g.O;
  T* dwp = ptr<T>(dw);
  // Row groups: a function of R only (never of the thread count), so sums are reproducible.
  const int64_t groups = std::clamp<int64_t>(R / 4096, 1, 8);
  const int64_t chunk = chunk_rows(K, sizeof(T));
  // One group accumulates straight into dw; several sum into buffers added in order after.
  std::vector<T> partial(groups > 1 ? static_cast<size_t>(groups * O * K) : 0, T(0));
  parallel_blocks(groups, 1, [&](int64_t g0, int64_t g1) {
    std::vector<T> col;
    for (int64_t gi = g0; gi < g1; ++gi) {
      T* acc = groups > 1 ? partial.data() + gi * O * K : dwp;
      const int64_t rb = R * gi / groups, re = R * (gi + 1) / groups;
      for (int64_t r0 = rb; r0 < re; r0 += chunk) {
        const int64_t r1 = std::min(re, r0 + chunk), rows = r1 - r0;
        const Patches<T> A = patches(xr, g, r0, r1, col);
        // acc (O, K) += dout rows^T (O, rows) @ patches (rows, K)
        gemm_rm<T>(true, false, O, K, rows, 1.0, d.row(r0), d.ld, A.p, A.ld, 1.0, acc, K);
      }
    }
  });
  if (groups > 1)
    parallel_blocks(O * K, 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        T s = dwp[i];
        for (int64_t gi = 0; gi < groups; ++gi) s += partial[gi * O * K + i];
        dwp[i] = s;
      }
    });
}

template <typename T>
void backward_db(const Tensor& db, const Rows<T>& d) {
  std::vector<double> s = column_reduce(d.n, d.c, [&](int64_t i, double* acc) {
    const T* r = d.row(i);
    for (int64_t j = 0; j < d.c; ++j) acc[j] += r[j];
  });
  T* g = ptr<T>(db);
  for (int64_t j = 0; j < d.c; ++j) g[j] += static_cast<T>(s[j]);
}

}  // namespace

void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvGeometry& g) {
  float_dispatch(x.dtype(), "conv2d_forward",
                 [&](auto tag) { forward_impl<decltype(tag)>(out, x, w, b, g); });
}

void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  float_dispatch(x.dtype(), "conv2d_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> d = rows_of<T>(dout), xr = rows_of<T>(x);
    if (dx.defined()) backward_dx<T>(dx, d, ptr<T>(w), g);
    if (dw.defined()) backward_dw<T>(dw, d, xr, g);
    if (db.defined()) backward_db<T>(db, d);
  });
}

}  // namespace rae::ops::cpu
