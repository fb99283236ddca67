// CPU 2-D pooling (channels last). Forward: tasks over output rows, each row's C channels
// vectorised along the contiguous channel run. Backward: tasks over images, outputs visited in
// scan order and scattered into dx, so each dx element receives its terms in a fixed order
// (deterministic, no atomics).
#include "ops/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// The in-image part [h0, h1) x [w0, w1) of output (oh, ow)'s window.
struct Window {
  int64_t h0, h1, w0, w1;
  int64_t size() const { return (h1 - h0) * (w1 - w0); }
};
Window window(const PoolGeometry& g, int64_t oh, int64_t ow) {
  const Pool2dParams& p = g.p;
  const int64_t hs = oh * p.stride_h - p.pad_h, ws = ow * p.stride_w - p.pad_w;
  return {std::max<int64_t>(hs, 0), std::min(hs + p.kernel_h, g.H), std::max<int64_t>(ws, 0),
          std::min(ws + p.kernel_w, g.W)};
}
// Adaptive pooling: rows [floor(i I / O), ceil((i + 1) I / O)).
Window adaptive_window(const PoolGeometry& g, int64_t oh, int64_t ow) {
  return {oh * g.H / g.OH, ((oh + 1) * g.H + g.OH - 1) / g.OH, ow * g.W / g.OW,
          ((ow + 1) * g.W + g.OW - 1) / g.OW};
}
double avg_divisor(const PoolGeometry& g, const Window& w) {
  return g.p.count_include_pad ? static_cast<double>(g.p.kernel_h * g.p.kernel_w)
                               : static_cast<double>(w.size());
}

// Row of pixel (n, h, w) in an (N, H, W, C) tensor.
inline int64_t pix(int64_t n, int64_t h, int64_t w, int64_t H, int64_t W) {
  return (n * H + h) * W + w;
}

// Forward over output rows: fn(n, oh, ow, out_row).
template <typename T, typename Fn>
void for_each_output(const Rows<T>& o, const PoolGeometry& g, Fn&& fn) {
  const int64_t per_image = g.OH * g.OW;
  parallel_blocks(g.N * per_image, row_grain(g.C * 4), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / per_image, rem = r % per_image;
      fn(n, rem / g.OW, rem % g.OW, o.row(r));
    }
  });
}

// Backward over images, outputs in scan order: fn(n, oh, ow, dout_row).
template <typename T, typename Fn>
void for_each_output_by_image(const Rows<T>& d, const PoolGeometry& g, Fn&& fn) {
  const int64_t per_image = g.OH * g.OW;
  parallel_blocks(g.N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) fn(n, oh, ow, d.row(n * per_image + oh * g.OW + ow));
  });
}

// Window sums in double (acc, C) of x over w.
template <typename T>
void window_sum(const Rows<T>& xr, const PoolGeometry& g, int64_t n, const Window& w, double* acc) {
  std::fill(acc, acc + g.C, 0.0);
  for (int64_t h = w.h0; h < w.h1; ++h)
    for (int64_t ww = w.w0; ww < w.w1; ++ww) {
      const T* x = xr.row(pix(n, h, ww, g.H, g.W));
      for (int64_t c = 0; c < g.C; ++c) acc[c] += x[c];
    }
}

// Row of the first maximum of channel c in window w, in scan order (PyTorch's choice); a NaN
// wins at once, as in PyTorch, whose forward propagates it.
template <typename T>
int64_t argmax_row(const Rows<T>& xr, const PoolGeometry& g, int64_t n, const Window& w,
                   int64_t c) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t arg = pix(n, w.h0, w.w0, g.H, g.W);
  for (int64_t h = w.h0; h < w.h1; ++h)
    for (int64_t ww = w.w0; ww < w.w1; ++ww) {
      const int64_t r = pix(n, h, ww, g.H, g.W);
      const T v = xr.row(r)[c];
      if (std::isnan(v)) return r;
      if (v > best) {
        best = v;
        arg = r;
      }
    }
  return arg;
}

template <typename T>
void scatter_window(const Rows<T>& gx, const PoolGeometry& g, int64_t n, const Window& w,
                    const T* dy, double scale) {
  for (int64_t h = w.h0; h < w.h1; ++h)
    for (int64_t ww = w.w0; ww < w.w1; ++ww) {
      T* dx = gx.row(pix(n, h, ww, g.H, g.W));
      for (int64_t c = 0; c < g.C; ++c) dx[c] += static_cast<T>(dy[c] * scale);
    }
}

}  // namespace

void max_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g) {
  float_dispatch(x.dtype(), "max_pool2d_forward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    for_each_output(o, g, [&](int64_t n, int64_t oh, int64_t ow, T* y) {
      const Window w = window(g, oh, ow);
      std::fill(y, y + g.C, -std::numeric_limits<T>::infinity());
      for (int64_t h = w.h0; h < w.h1; ++h)
        for (int64_t ww = w.w0; ww < w.w1; ++ww) {
          const T* xv = xr.row(pix(n, h, ww, g.H, g.W));
          for (int64_t c = 0; c < g.C; ++c)
            if (xv[c] > y[c] || std::isnan(xv[c])) y[c] = xv[c];
        }
    });
  });
}

void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& x,
                         const PoolGeometry& g) {
  float_dispatch(x.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), d = rows_of<T>(dout), gx = rows_of<T>(dx);
    for_each_output_by_image(d, g, [&](int64_t n, int64_t oh, int64_t ow, const T* dy) {
      const Window w = window(g, oh, ow);
      for (int64_t c = 0; c < g.C; ++c) gx.row(argmax_row(xr, g, n, w, c))[c] += dy[c];
    });
  });
}

namespace {

// Average pooling over windows chosen by win(oh, ow) with divisor div(window): forward writes
// each output's mean, backward scatters dout / divisor over its window.
template <typename WinFn, typename DivFn>
void average_forward(const char* op, const Tensor& out, const Tensor& x, const PoolGeometry& g,
                     WinFn win, DivFn div) {
  float_dispatch(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Rows<T> xr = rows_of<T>(x), o = rows_of<T>(out);
    for_each_output(o, g, [&](int64_t n, int64_t oh, int64_t ow, T* y) {
      thread_local std::vector<double> acc;
      acc.resize(static_cast<size_t>(g.C));
      const Window w = win(oh, ow);
      window_sum(xr, g, n, w, acc.data());
      const double inv = 1.0 / div(w);
      for (int64_t c = 0; c < g.C; ++c) y[c] = static_cast<T>(acc[c] * inv);
    });
  });
}

template <typename WinFn, typename DivFn>
void average_backward(const char* op, const Tensor& dx, const Tensor& dout, const PoolGeometry& g,
                      WinFn win, DivFn div) {
  float_dispatch(dout.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Rows<T> d = rows_of<T>(dout), gx = rows_of<T>(dx);
    for_each_output_by_image(d, g, [&](int64_t n, int64_t oh, int64_t ow, const T* dy) {
      const Window w = win(oh, ow);
      scatter_window(gx, g, n, w, dy, 1.0 / div(w));
    });
  });
}

}  // namespace

void avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g) {
  average_forward(
      "avg_pool2d_forward", out, x, g, [&](int64_t oh, int64_t ow) { return window(g, oh, ow); },
      [&](const Window& w) { return avg_divisor(g, w); });
}

void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& g) {
  average_backward(
      "avg_pool2d_backward", dx, dout, g, [&](int64_t oh, int64_t ow) { return window(g, oh, ow); },
      [&](const Window& w) { return avg_divisor(g, w); });
}

void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x, const PoolGeometry& g) {
  average_forward(
      "adaptive_avg_pool2d_forward", out, x, g,
      [&](int64_t oh, int64_t ow) { return adaptive_window(g, oh, ow); },
      [](const Window& w) { return static_cast<double>(w.size()); });
}

void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const PoolGeometry& g) {
  average_backward(
      "adaptive_avg_pool2d_backward", dx, dout, g,
      [&](int64_t oh, int64_t ow) { return adaptive_window(g, oh, ow); },
      [](const Window& w) { return static_cast<double>(w.size()); });
}

}  // namespace rae::ops::cpu
