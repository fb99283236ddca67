// Naive F64 references for the vision op cases: direct loops from the definitions (PyTorch's
// Conv2d/Conv1d, BatchNorm, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, ReLU/LeakyReLU and
// torch-fidelity's TF1 bilinear resize), channels last, sharing nothing with the kernels.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "ops/conv.h"
#include "ops/op_vision.h"
#include "ops/pool.h"

namespace rae::test::ops {

namespace {

using Ins = std::vector<Tensor>;
using Ref = std::function<std::vector<Tensor>(const Ins&)>;

Tensor f64(const Tensor& t) {
  return t.dtype() == DType::F64 ? t.clone() : t.cast(DType::F64);
}
const double* rd(const Tensor& t) {
  return t.data<double>();
}

// conv: x (N, H, W, C), w (O, KH, KW, C); 1-D tensors get H = KH = 1.
Ref conv_ref(int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool bias, bool relu) {
  return [=](const Ins& in) {
    const bool one_d = in[0].ndim() == 3;
    Tensor x = f64(in[0]), w = f64(in[1]);
    Tensor b = bias ? f64(in[2]) : Tensor();
    const int64_t N = x.dim(0), H = one_d ? 1 : x.dim(1), W = x.dim(one_d ? 1 : 2);
    const int64_t C = x.dim(-1), O = w.dim(0), KH = one_d ? 1 : w.dim(1);
    const int64_t KW = w.dim(one_d ? 1 : 2);
    const int64_t OH = (H + 2 * ph - KH) / sh + 1, OW = (W + 2 * pw - KW) / sw + 1;
    Tensor out = Tensor::zeros(one_d ? Shape{N, OW, O} : Shape{N, OH, OW, O}, DType::F64);
    double* o = out.data<double>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t k = 0; k < O; ++k) {
            double s = bias ? rd(b)[k] : 0.0;
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * sh - ph + kh, iw = ow * sw - pw + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                for (int64_t c = 0; c < C; ++c)
                  s += rd(x)[((n * H + ih) * W + iw) * C + c] *
                       rd(w)[((k * KH + kh) * KW + kw) * C + c];
              }
            o[((n * OH + oh) * OW + ow) * O + k] = relu ? std::max(s, 0.0) : s;
          }
    return std::vector<Tensor>{out};
  };
}

// Batch norm over rows (M, C) with statistics `mu`, `var` per channel.
Tensor bn_apply(const Tensor& xt, const std::vector<double>& mu, const std::vector<double>& var,
                const Tensor& gamma, const Tensor& beta, double eps) {
  Tensor x = f64(xt);
  const int64_t C = x.dim(-1), M = x.numel() / C;
  Tensor out = Tensor::zeros(x.shape(), DType::F64);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 0; j < C; ++j) {
      double y = (rd(x)[r * C + j] - mu[j]) / std::sqrt(var[j] + eps);
      if (gamma.defined()) y = y * gamma.item(j) + beta.item(j);
      out.data<double>()[r * C + j] = y;
    }
  return out;
}

Ref bn_train_ref(bool affine, bool sliced) {
  return [=](const Ins& in) {
    Tensor x = sliced ? in[0].narrow(2, 1, in[0].dim(2) - 3).clone() : f64(in[0]);
    x = f64(x);
    const int64_t C = x.dim(-1), M = x.numel() / C;
    std::vector<double> mu(C, 0.0), var(C, 0.0);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < C; ++j) mu[j] += rd(x)[r * C + j] / M;
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < C; ++j)
        var[j] += (rd(x)[r * C + j] - mu[j]) * (rd(x)[r * C + j] - mu[j]) / M;
    Tensor g = affine ? f64(in[1]) : Tensor(), b = affine ? f64(in[2]) : Tensor();
    return std::vector<Tensor>{bn_apply(x, mu, var, g, b, 1e-5)};
  };
}

Ref bn_eval_ref() {
  return [](const Ins& in) {
    const int64_t C = in[0].dim(-1);
    std::vector<double> mu(C), var(C);
    for (int64_t j = 0; j < C; ++j) {
      mu[j] = in[3].item(j);
      var[j] = in[4].item(j);
    }
    return std::vector<Tensor>{bn_apply(in[0], mu, var, f64(in[1]), f64(in[2]), 1e-3)};
  };
}

// Pooling over x (N, H, W, C): max or average with PyTorch's rules.
Ref pool_ref(bool is_max, rae::ops::Pool2dParams p) {
  return [=](const Ins& in) {
    Tensor x = f64(in[0]);
    const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    const int64_t OH = (H + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
    const int64_t OW = (W + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
    Tensor out = Tensor::zeros({N, OH, OW, C}, DType::F64);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t c = 0; c < C; ++c) {
            double m = -std::numeric_limits<double>::infinity(), s = 0;
            int64_t count = 0;
            for (int64_t kh = 0; kh < p.kernel_h; ++kh)
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh;
                const int64_t iw = ow * p.stride_w - p.pad_w + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const double v = rd(x)[((n * H + ih) * W + iw) * C + c];
                m = std::max(m, v);
                s += v;
                ++count;
              }
            const double div = p.count_include_pad ? p.kernel_h * p.kernel_w : count;
            out.data<double>()[((n * OH + oh) * OW + ow) * C + c] = is_max ? m : s / div;
          }
    return std::vector<Tensor>{out};
  };
}

Ref adaptive_ref(int64_t OH, int64_t OW) {
  return [=](const Ins& in) {
    Tensor x = f64(in[0]);
    const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    Tensor out = Tensor::zeros({N, OH, OW, C}, DType::F64);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          const int64_t h0 = static_cast<int64_t>(std::floor(double(i) * H / OH));
          const int64_t h1 = static_cast<int64_t>(std::ceil(double(i + 1) * H / OH));
          const int64_t w0 = static_cast<int64_t>(std::floor(double(j) * W / OW));
          const int64_t w1 = static_cast<int64_t>(std::ceil(double(j + 1) * W / OW));
          for (int64_t c = 0; c < C; ++c) {
            double s = 0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) s += rd(x)[((n * H + h) * W + w) * C + c];
            out.data<double>()[((n * OH + i) * OW + j) * C + c] = s / ((h1 - h0) * (w1 - w0));
          }
        }
    return std::vector<Tensor>{out};
  };
}

Ref leaky_ref(double slope) {
  return [=](const Ins& in) {
    Tensor x = f64(in[0]);
    Tensor out = Tensor::zeros(x.shape(), DType::F64);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double v = rd(x)[i];
      out.data<double>()[i] = v > 0 ? v : slope * v;
    }
    return std::vector<Tensor>{out};
  };
}

// torch-fidelity's TF1 bilinear resize in float64 (its float64 path: scale rounded to float32).
Ref resize_ref(int64_t OH, int64_t OW, double sub, double div) {
  return [=](const Ins& in) {
    Tensor x = f64(in[0]);
    const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    const double sy = static_cast<float>(double(H) / OH), sx = static_cast<float>(double(W) / OW);
    Tensor out = Tensor::zeros({N, OH, OW, C}, DType::F64);
    auto at = [&](int64_t n, int64_t h, int64_t w, int64_t c) {
      return rd(x)[((n * H + h) * W + w) * C + c];
    };
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j)
          for (int64_t c = 0; c < C; ++c) {
            const double py = i * sy, px = j * sx;
            const int64_t y0 = static_cast<int64_t>(std::floor(py)), y1 = std::min(y0 + 1, H - 1);
            const int64_t x0 = static_cast<int64_t>(std::floor(px)), x1 = std::min(x0 + 1, W - 1);
            const double dy = py - y0, dx = px - x0;
            const double top = at(n, y0, x0, c) + (at(n, y0, x1, c) - at(n, y0, x0, c)) * dx;
            const double bot = at(n, y1, x0, c) + (at(n, y1, x1, c) - at(n, y1, x0, c)) * dx;
            out.data<double>()[((n * OH + i) * OW + j) * C + c] =
                (top + (bot - top) * dy - sub) / div;
          }
    return std::vector<Tensor>{out};
  };
}

std::map<std::string, Ref> references() {
  using P = rae::ops::Pool2dParams;
  std::map<std::string, Ref> r;
  r["conv2d_3x3_pad1"] = conv_ref(1, 1, 1, 1, true, false);
  r["conv2d_3x3_stride2_nobias"] = conv_ref(2, 2, 0, 0, false, false);
  r["conv2d_1x3_pad01"] = conv_ref(1, 1, 0, 1, true, false);
  r["conv2d_3x1_pad10"] = conv_ref(1, 1, 1, 0, true, false);
  r["conv2d_3x2_stride21_pad10"] = conv_ref(2, 1, 1, 0, true, false);
  r["conv2d_1x1"] = conv_ref(1, 1, 0, 0, true, false);
  r["conv2d_1x1_stride2"] = conv_ref(2, 2, 0, 0, true, false);
  r["conv2d_out_slice"] = conv_ref(1, 1, 1, 1, true, false);
  r["conv2d_fused_relu"] = conv_ref(1, 1, 1, 1, true, true);
  r["conv2d_chunked"] = conv_ref(1, 1, 1, 1, true, false);
  r["conv1d_k9_pad4"] = conv_ref(1, 1, 0, 4, true, false);
  r["conv1d_k3_stride2_slice"] = conv_ref(1, 2, 0, 1, false, false);
  r["batchnorm_train"] = bn_train_ref(true, false);
  r["batchnorm_train_noaffine"] = bn_train_ref(false, false);
  r["batchnorm_train_sliced_x"] = bn_train_ref(true, true);
  r["batchnorm_eval"] = bn_eval_ref();
  r["max_pool2d_k3s2"] = pool_ref(true, P::square(3, 2));
  r["max_pool2d_k3s1p1"] = pool_ref(true, P::square(3, 1, 1));
  r["max_pool2d_k2s2"] = pool_ref(true, P::square(2));
  r["max_pool2d_k3s2_slice"] = pool_ref(true, P::square(3, 2));
  r["avg_pool2d_k3s1p1_exclude_pad"] = pool_ref(false, P::square(3, 1, 1, false));
  r["avg_pool2d_k3s1p1_include_pad"] = pool_ref(false, P::square(3, 1, 1));
  const P rect = rect_pool_params();
  r["avg_pool2d_rect_exclude_pad"] = pool_ref(false, rect);
  r["adaptive_avg_pool2d_global"] = adaptive_ref(1, 1);
  r["adaptive_avg_pool2d_3x2"] = adaptive_ref(3, 2);
  r["relu"] = leaky_ref(0.0);
  r["leaky_relu_0p2"] = leaky_ref(0.2);
  r["resize_tf1_u8_down"] = resize_ref(4, 5, 128, 128);
  r["resize_tf1_u8_up"] = resize_ref(13, 9, 128, 128);
  r["resize_tf1_float"] = resize_ref(10, 3, 0, 1);
  return r;
}

}  // namespace

std::function<std::vector<Tensor>(const std::vector<Tensor>&)> vision_reference(
    const std::string& name) {
  static const std::map<std::string, Ref> refs = references();
  auto it = refs.find(name);
  return it == refs.end() ? nullptr : it->second;
}

}  // namespace rae::test::ops
