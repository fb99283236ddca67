// Dispatch and argument checks for the channels-last convolutions.
#include "ops/conv.h"

#include <atomic>

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

namespace {
std::atomic<ConvAlgoSearch> g_search{ConvAlgoSearch::Heuristic};
}

void set_conv_algo_search(ConvAlgoSearch s) {
  g_search.store(s);
}
ConvAlgoSearch conv_algo_search() {
  return g_search.load();
}

int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  RAE_CHECK(stride >= 1 && pad >= 0 && k >= 1, "conv_out_size: kernel ", k, ", stride ", stride,
            ", padding ", pad, " (need kernel >= 1, stride >= 1, padding >= 0)");
  const int64_t span = in + 2 * pad - k;
  RAE_CHECK(span >= 0, "convolution: input extent ", in, " with padding ", pad,
            " is smaller than the kernel (", k, ")");
  return span / stride + 1;
}

namespace {

// Fills the geometry from x (N, H, W, C) and w (O, KH, KW, C) after checking both.
ConvGeometry geometry(const char* op, const Tensor& x, const Tensor& w, int64_t stride_h,
                      int64_t stride_w, int64_t pad_h, int64_t pad_w, bool relu, bool is_1d) {
  const int nd = is_1d ? 3 : 4;
  check::is_float(x, op, "x");
  check::ndim(x, nd, op, "x");
  check::rows(x, op, "x");
  check::like(w, x, op, "w");
  check::ndim(w, nd, op, "w");
  check::contiguous(w, op, "w");
  ConvGeometry g;
  g.N = x.dim(0);
  g.H = is_1d ? 1 : x.dim(1);
  g.W = x.dim(nd - 2);
  g.C = x.dim(nd - 1);
  g.O = w.dim(0);
  g.KH = is_1d ? 1 : w.dim(1);
  g.KW = w.dim(nd - 2);
  RAE_CHECK(w.dim(nd - 1) == g.C, op, ": argument 'w' ", w.shape().str(), " has ", w.dim(nd - 1),
            " input channels (its last dim) but x ", x.shape().str(), " has ", g.C,
            is_1d ? " (w is (O, K, C))" : " (w is (O, KH, KW, C))");
  RAE_CHECK(stride_h >= 1 && stride_w >= 1, op, ": stride must be >= 1, got (", stride_h, ", ",
            stride_w, ")");
  RAE_CHECK(pad_h >= 0 && pad_w >= 0, op, ": padding must be >= 0, got (", pad_h, ", ", pad_w, ")");
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  g.relu = relu;
  g.OH = conv_out_size(g.H, g.KH, stride_h, pad_h);
  g.OW = conv_out_size(g.W, g.KW, stride_w, pad_w);
  return g;
}

Shape out_shape(const ConvGeometry& g, bool is_1d) {
  return is_1d ? Shape{g.N, g.OW, g.O} : Shape{g.N, g.OH, g.OW, g.O};
}

void check_bias(const char* op, const Tensor& b, const char* name, const Tensor& x,
                const ConvGeometry& g) {
  if (!b.defined()) return;
  check::like(b, x, op, name);
  check::shape(b, {g.O}, op, name);
  check::contiguous(b, op, name);
}

void check_output(const char* op, const Tensor& t, const char* name, const Tensor& x,
                  const ConvGeometry& g, bool is_1d) {
  check::like(t, x, op, name);
  check::shape(t, out_shape(g, is_1d), op, name);
  check::rows(t, op, name);
}

void forward(const char* op, const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
             const ConvGeometry& g, bool is_1d) {
  check_bias(op, b, "b", x, g);
  check_output(op, out, "out", x, g, is_1d);
  if (out.numel() == 0) return;
  RAE_DISPATCH(x, conv2d_forward, out, x, w, b, g);
}

void backward(const char* op, const Tensor& dx, const Tensor& dw, const Tensor& db,
              const Tensor& dout, const Tensor& x, const Tensor& w, const ConvGeometry& g,
              bool is_1d) {
  RAE_CHECK(!g.relu, op,
            ": the fused ReLU epilogue is forward-only; train with a separate "
            "relu_forward / relu_backward");
  check_output(op, dout, "dout", x, g, is_1d);
  if (dx.defined()) {
    check::like(dx, x, op, "dx");
    check::shape(dx, x.shape(), op, "dx");
    check::contiguous(dx, op, "dx");
  }
  if (dw.defined()) {
    check::like(dw, x, op, "dw");
    check::shape(dw, w.shape(), op, "dw");
    check::contiguous(dw, op, "dw");
  }
  check_bias(op, db, "db", x, g);
  if (!dx.defined() && !dw.defined() && !db.defined()) return;
  if (dout.numel() == 0) return;
  RAE_DISPATCH(x, conv2d_backward, dx, dw, db, dout, x, w, g);
}

}  // namespace

void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const Conv2dParams& p) {
  const char* op = "conv2d_forward";
  ConvGeometry g = geometry(op, x, w, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.relu, false);
  forward(op, out, x, w, b, g, false);
}

void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  const char* op = "conv2d_backward";
  ConvGeometry g = geometry(op, x, w, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.relu, false);
  backward(op, dx, dw, db, dout, x, w, g, false);
}

void conv1d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const Conv1dParams& p) {
  const char* op = "conv1d_forward";
  ConvGeometry g = geometry(op, x, w, 1, p.stride, 0, p.pad, p.relu, true);
  forward(op, out, x, w, b, g, true);
}

void conv1d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Conv1dParams& p) {
  const char* op = "conv1d_backward";
  ConvGeometry g = geometry(op, x, w, 1, p.stride, 0, p.pad, p.relu, true);
  backward(op, dx, dw, db, dout, x, w, g, true);
}

}  // namespace rae::ops
