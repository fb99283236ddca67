// CPU pixel ops (channels last): per-channel affine, the discriminator's
// quantisation and PyTorch's bilinear resize with its gathering backward.
#include "ops/image.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// Per input index i of one dimension, the outputs j whose taps touch it, with weights: the
// transposed interpolation matrix, built once per call (sizes are small).
template <class R>
struct Gather {
  std::vector<int> start, j;
  std::vector<R> w;
};
template <class R>
Gather<R> transposed_taps(int in, int out) {
  const R scale = static_cast<R>(in) / static_cast<R>(out);
  Gather<R> g;
  g.start.push_back(0);
  for (int i = 0; i < in; ++i) {
    int a, b;
    bilinear_span(i, out, static_cast<double>(scale), &a, &b);
    for (int jj = a; jj <= b; ++jj) {
      const R w = bilinear_weight<R>(jj, i, in, scale);
      if (w != R(0)) {
        g.j.push_back(jj);
        g.w.push_back(w);
      }
    }
    g.start.push_back(static_cast<int>(g.j.size()));
  }
  return g;
}

}  // namespace

void channel_affine_forward(const Tensor& out, const Tensor& x, const std::vector<double>& scale,
                            const std::vector<double>& shift) {
  float_dispatch(x.dtype(), "channel_affine_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), xr = rows_of<T>(x);
    parallel_blocks(xr.n, row_grain(xr.c), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* a = xr.row(i);
        T* y = o.row(i);
        for (int64_t c = 0; c < xr.c; ++c)
          y[c] = static_cast<T>(a[c] * static_cast<T>(scale[c]) + static_cast<T>(shift[c]));
      }
    });
  });
}

void channel_affine_backward(const Tensor& dx, const Tensor& dout,
                             const std::vector<double>& scale) {
  float_dispatch(dout.dtype(), "channel_affine_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> g = rows_of<T>(dx), d = rows_of<T>(dout);
    parallel_blocks(d.n, row_grain(d.c), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* dy = d.row(i);
        T* gx = g.row(i);
        for (int64_t c = 0; c < d.c; ++c) gx[c] += dy[c] * static_cast<T>(scale[c]);
      }
    });
  });
}

void quantize_pm1(const Tensor& out, const Tensor& x) {
  float_dispatch(x.dtype(), "quantize_pm1", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> o = rows_of<T>(out), xr = rows_of<T>(x);
    parallel_blocks(xr.n, row_grain(xr.c), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* a = xr.row(i);
        T* y = o.row(i);
        for (int64_t c = 0; c < xr.c; ++c) {
          const T v = std::min<T>(std::max<T>(a[c], T(-1)), T(1));
          y[c] = std::nearbyint((v + T(1)) * T(127.5)) / T(127.5) - T(1);  // half to even
        }
      }
    });
  });
}

void resize_bilinear_forward(const Tensor& out, const Tensor& x) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t OH = out.dim(1), OW = out.dim(2);
  float_dispatch(x.dtype(), "resize_bilinear_forward", [&](auto tag) {
    using T = decltype(tag);  // the tap arithmetic too (PyTorch's opmath)
    const T sh = static_cast<T>(H) / static_cast<T>(OH),
            sw = static_cast<T>(W) / static_cast<T>(OW);
    std::vector<BilinearTap<T>> ty(static_cast<size_t>(OH)), tx(static_cast<size_t>(OW));
    for (int64_t j = 0; j < OH; ++j)
      ty[j] = bilinear_tap<T>(static_cast<int>(j), static_cast<int>(H), sh);
    for (int64_t j = 0; j < OW; ++j)
      tx[j] = bilinear_tap<T>(static_cast<int>(j), static_cast<int>(W), sw);
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_blocks(N * OH, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / OH, j = r % OH;
        const BilinearTap<T>& a = ty[j];
        const T* top = xp + ((n * H + a.lo) * W) * C;
        const T* bot = xp + ((n * H + a.hi) * W) * C;
        T* o = op + r * OW * C;
        for (int64_t l = 0; l < OW; ++l) {
          const BilinearTap<T>& b = tx[l];
          for (int64_t c = 0; c < C; ++c) {
            const T t = b.w_lo * top[b.lo * C + c] + b.w_hi * top[b.hi * C + c];
            const T u = b.w_lo * bot[b.lo * C + c] + b.w_hi * bot[b.hi * C + c];
            o[l * C + c] = a.w_lo * t + a.w_hi * u;
          }
        }
      }
    });
  });
}

void resize_bilinear_backward(const Tensor& dx, const Tensor& dout) {
  const int64_t N = dx.dim(0), H = dx.dim(1), W = dx.dim(2), C = dx.dim(3);
  const int64_t OH = dout.dim(1), OW = dout.dim(2);
  float_dispatch(dout.dtype(), "resize_bilinear_backward", [&](auto tag) {
    using T = decltype(tag);
    const Gather<T> gy = transposed_taps<T>(static_cast<int>(H), static_cast<int>(OH));
    const Gather<T> gx = transposed_taps<T>(static_cast<int>(W), static_cast<int>(OW));
    const T* dp = ptr<T>(dout);
    T* xp = ptr<T>(dx);
    parallel_blocks(N * H, 1, [&](int64_t r0, int64_t r1) {
      std::vector<T> rowsum(static_cast<size_t>(OW * C));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / H, i = r % H;
        // Rows of dout weighted by their share of input row i, then columns gathered.
        std::fill(rowsum.begin(), rowsum.end(), T(0));
        for (int e = gy.start[i]; e < gy.start[i + 1]; ++e) {
          const T* d = dp + ((n * OH + gy.j[e]) * OW) * C;
          const T w = gy.w[e];
          for (int64_t q = 0; q < OW * C; ++q) rowsum[q] += w * d[q];
        }
        T* g = xp + r * W * C;
        for (int64_t k = 0; k < W; ++k)
          for (int e = gx.start[k]; e < gx.start[k + 1]; ++e) {
            const T w = gx.w[e];
            const T* s = rowsum.data() + gx.j[e] * C;
            for (int64_t c = 0; c < C; ++c) g[k * C + c] += w * s[c];
          }
      }
    });
  });
}

}  // namespace rae::ops::cpu
