// Naive F64 references for the stage-1 op cases, written from the definitions (the RAE
// release's losses and DiffAug, lpips' normalize_tensor, PyTorch's bilinear interpolation and
// spectral_norm, F.pad circular), sharing nothing with the kernels.
#include <cmath>
#include <map>

#include "core/rng.h"
#include "ops/op_stage1.h"

namespace rae::test::ops {

namespace {

using Ins = std::vector<Tensor>;
using Ref = std::function<std::vector<Tensor>(const Ins&)>;

Tensor f64(const Tensor& t) {
  return t.dtype() == DType::F64 ? t.clone() : t.cast(DType::F64);
}
Tensor scalar(double v) {
  return Tensor::full({1}, v, DType::F64);
}
double at(const Tensor& t, int64_t i) {
  return t.item(i);
}

std::vector<Tensor> one(const Tensor& t) {
  return {t};
}

// ---- losses --------------------------------------------------------------------------------

Ref l1_ref() {
  return [](const Ins& in) {
    double s = 0;
    for (int64_t i = 0; i < in[0].numel(); ++i) s += std::fabs(at(in[0], i) - at(in[1], i));
    return one(scalar(s / static_cast<double>(in[0].numel())));
  };
}
Ref hinge_ref(double sign) {
  return [sign](const Ins& in) {
    double s = 0;
    for (int64_t i = 0; i < in[0].numel(); ++i) s += std::max(0.0, 1.0 + sign * at(in[0], i));
    return one(scalar(s / static_cast<double>(in[0].numel())));
  };
}
Ref mean_ref() {
  return [](const Ins& in) {
    double s = 0;
    for (int64_t i = 0; i < in[0].numel(); ++i) s += at(in[0], i);
    return one(scalar(s / static_cast<double>(in[0].numel())));
  };
}
Ref count_ref() {
  return [](const Ins& in) {
    double s = 0;
    for (int64_t i = 0; i < in[0].numel(); ++i) s += at(in[0], i) > at(in[1], i) ? 1 : 0;
    return one(scalar(s));
  };
}
Ref lpips_ref() {
  return [](const Ins& in) {
    const int64_t C = in[0].dim(-1), M = in[0].numel() / C;
    double total = 0;
    for (int64_t r = 0; r < M; ++r) {
      double nx = 0, ny = 0;
      for (int64_t c = 0; c < C; ++c) {
        nx += at(in[0], r * C + c) * at(in[0], r * C + c);
        ny += at(in[1], r * C + c) * at(in[1], r * C + c);
      }
      nx = std::sqrt(nx) + 1e-10;
      ny = std::sqrt(ny) + 1e-10;
      for (int64_t c = 0; c < C; ++c) {
        const double d = at(in[0], r * C + c) / nx - at(in[1], r * C + c) / ny;
        total += at(in[2], c) * d * d;
      }
    }
    return one(scalar(total / static_cast<double>(M)));
  };
}

// ---- pixel ops -----------------------------------------------------------------------------

Ref affine_ref() {
  return [](const Ins& in) {
    const std::vector<double> sc = {2.0, -0.5, 1.5}, sh = {-1.0, 0.25, 0.1};
    Tensor out = f64(in[0]);
    for (int64_t i = 0; i < out.numel(); ++i)
      out.data<double>()[i] = at(in[0], i) * sc[i % 3] + sh[i % 3];
    return one(out);
  };
}
Ref quantize_ref() {
  return [](const Ins& in) {
    Tensor out = f64(in[0]);
    for (int64_t i = 0; i < out.numel(); ++i) {
      const double v = std::min(std::max(at(in[0], i), -1.0), 1.0);
      out.data<double>()[i] = std::nearbyint((v + 1.0) * 127.5) / 127.5 - 1.0;
    }
    return one(out);
  };
}
// PyTorch's upsample_bilinear2d (align_corners=False) in double (its float64 path).
void bilinear_1d(int64_t j, int64_t in, int64_t out, int64_t* lo, int64_t* hi, double* l1) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  double src = scale * (static_cast<double>(j) + 0.5) - 0.5;
  if (src < 0) src = 0;
  *lo = static_cast<int64_t>(src);
  *hi = *lo < in - 1 ? *lo + 1 : *lo;
  *l1 = src - static_cast<double>(*lo);
}
Ref resize_ref(int64_t oh, int64_t ow) {
  return [=](const Ins& in) {
    const Tensor& x = in[0];
    const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    Tensor out = Tensor::zeros({N, oh, ow, C}, DType::F64);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < oh; ++j)
        for (int64_t l = 0; l < ow; ++l) {
          int64_t y0, y1, x0, x1;
          double ly, lx;
          bilinear_1d(j, H, oh, &y0, &y1, &ly);
          bilinear_1d(l, W, ow, &x0, &x1, &lx);
          for (int64_t c = 0; c < C; ++c) {
            auto px = [&](int64_t y, int64_t xx) { return at(x, ((n * H + y) * W + xx) * C + c); };
            out.data<double>()[((n * oh + j) * ow + l) * C + c] =
                (1 - ly) * ((1 - lx) * px(y0, x0) + lx * px(y0, x1)) +
                ly * ((1 - lx) * px(y1, x0) + lx * px(y1, x1));
          }
        }
    return one(out);
  };
}

// ---- DiffAug, as src/disc/diffaug.py writes it (NHWC here) ----------------------------------

Ref translate_ref() {
  return [](const Ins& in) {
    const Tensor& x = in[0];
    const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    Tensor out = Tensor::zeros(x.shape(), DType::F64);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          // The release: index the 1-padded image at clamp(h + dy + 1, 0, H + 1).
          const int64_t ph =
              std::min<int64_t>(std::max<int64_t>(h + case_shifts()[2 * b] + 1, 0), H + 1);
          const int64_t pw =
              std::min<int64_t>(std::max<int64_t>(w + case_shifts()[2 * b + 1] + 1, 0), W + 1);
          const bool pad = ph == 0 || ph == H + 1 || pw == 0 || pw == W + 1;
          for (int64_t c = 0; c < C; ++c)
            out.data<double>()[((b * H + h) * W + w) * C + c] =
                pad ? 0.0 : at(x, ((b * H + ph - 1) * W + pw - 1) * C + c);
        }
    return one(out);
  };
}
Ref color_ref() {
  return [](const Ins& in) {
    const Tensor& x = in[0];
    const int64_t B = x.dim(0), P = x.dim(1) * x.dim(2), C = x.dim(3);
    Tensor out = f64(x);
    double* o = out.data<double>();
    for (int64_t b = 0; b < B; ++b) {
      const double a = case_factors()[3 * b], s = case_factors()[3 * b + 1],
                   k = case_factors()[3 * b + 2];
      double* xs = o + b * P * C;
      for (int64_t i = 0; i < P * C; ++i) xs[i] += a;
      for (int64_t p = 0; p < P; ++p) {
        double m = 0;
        for (int64_t c = 0; c < C; ++c) m += xs[p * C + c] / C;
        for (int64_t c = 0; c < C; ++c) xs[p * C + c] = (xs[p * C + c] - m) * s + m;
      }
      double m2 = 0;
      for (int64_t i = 0; i < P * C; ++i) m2 += xs[i] / static_cast<double>(P * C);
      for (int64_t i = 0; i < P * C; ++i) xs[i] = (xs[i] - m2) * k + m2;
    }
    return one(out);
  };
}
Ref cutout_ref() {
  return [](const Ins& in) {
    const Tensor& x = in[0];
    const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    Tensor out = f64(x);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = case_boxes()[4 * b]; h < case_boxes()[4 * b + 1]; ++h)
        for (int64_t w = case_boxes()[4 * b + 2]; w < case_boxes()[4 * b + 3]; ++w)
          for (int64_t c = 0; c < C; ++c) out.data<double>()[((b * H + h) * W + w) * C + c] = 0;
    return one(out);
  };
}

// ---- spectral norm, padding, grouped batch norm, noise -------------------------------------

std::vector<double> vec(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = at(t, i);
  return v;
}
void normalize(std::vector<double>& t) {
  double s = 0;
  for (double x : t) s += x * x;
  s = std::max(std::sqrt(s), 1e-12);
  for (double& x : t) x /= s;
}
// torch.nn.utils.spectral_norm's compute_weight with `iters` power iterations.
Ref spectral_ref(int iters) {
  return [iters](const Ins& in) {
    const Tensor& w = in[0];
    const int64_t O = w.dim(0), K = w.numel() / O;
    std::vector<double> u = vec(in[1]), v = vec(in[2]), W = vec(w);
    for (int it = 0; it < iters; ++it) {
      std::fill(v.begin(), v.end(), 0.0);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t k = 0; k < K; ++k) v[k] += W[o * K + k] * u[o];
      normalize(v);
      for (int64_t o = 0; o < O; ++o) {
        u[o] = 0;
        for (int64_t k = 0; k < K; ++k) u[o] += W[o * K + k] * v[k];
      }
      normalize(u);
    }
    double sigma = 0;
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < K; ++k) sigma += u[o] * W[o * K + k] * v[k];
    Tensor wsn = f64(w);
    for (int64_t i = 0; i < O * K; ++i) wsn.data<double>()[i] = W[i] / sigma;
    if (iters == 0) return one(wsn);
    Tensor ut = Tensor::empty({O}, DType::F64), vt = Tensor::empty({K}, DType::F64);
    std::copy(u.begin(), u.end(), ut.data<double>());
    std::copy(v.begin(), v.end(), vt.data<double>());
    return std::vector<Tensor>{wsn, ut, vt, scalar(sigma)};
  };
}
Ref pad_ref(int64_t pad) {
  return [pad](const Ins& in) {
    const Tensor& x = in[0];
    const int64_t N = x.dim(0), L = x.dim(1), C = x.dim(2), P = L + 2 * pad;
    Tensor out = Tensor::zeros({N, P, C}, DType::F64);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < P; ++i) {
        int64_t j = i - pad;  // F.pad circular: the left pad is the tail, the right the head
        if (j < 0) j += L;
        if (j >= L) j -= L;
        for (int64_t c = 0; c < C; ++c)
          out.data<double>()[(n * P + i) * C + c] = at(x, (n * L + j) * C + c);
      }
    return one(out);
  };
}
Ref bn_grouped_ref() {
  return [](const Ins& in) {
    const Tensor& x = in[0];
    const int64_t N = x.dim(0), L = x.dim(1), C = x.dim(2);
    Tensor out = f64(x);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        double m = 0, var = 0;
        for (int64_t l = 0; l < L; ++l) m += at(x, (n * L + l) * C + c) / L;
        for (int64_t l = 0; l < L; ++l) {
          const double d = at(x, (n * L + l) * C + c) - m;
          var += d * d / L;
        }
        for (int64_t l = 0; l < L; ++l)
          out.data<double>()[(n * L + l) * C + c] =
              (at(x, (n * L + l) * C + c) - m) / std::sqrt(var + 1e-6) * at(in[1], c) +
              at(in[2], c);
      }
    return one(out);
  };
}
Ref noise_ref() {
  return [](const Ins& in) {
    Tensor z = f64(in[0]);
    const int64_t B = z.dim(0), per = z.numel() / B;
    for (int64_t b = 0; b < B; ++b) {
      const rng::Key k{7, rng::Purpose::NoiseAug, 3,
                       static_cast<uint64_t>(in[1].data<int64_t>()[b])};
      const float s = 0.8f * rng::uniform_at(k, 0);  // the op's float arithmetic
      for (int64_t i = 0; i < per; ++i)
        z.data<double>()[b * per + i] += s * rng::normal_at(k, 4 + static_cast<uint64_t>(i));
    }
    return one(z);
  };
}

}  // namespace

std::function<std::vector<Tensor>(const std::vector<Tensor>&)> stage1_reference(
    const std::string& name) {
  static const std::map<std::string, Ref> refs = {
      {"l1_loss", l1_ref()},
      {"hinge_fake", hinge_ref(1.0)},
      {"hinge_real", hinge_ref(-1.0)},
      {"mean_loss", mean_ref()},
      {"count_greater", count_ref()},
      {"lpips_distance", lpips_ref()},
      {"channel_affine", affine_ref()},
      {"quantize_pm1", quantize_ref()},
      {"resize_bilinear_down", resize_ref(4, 5)},
      {"resize_bilinear_up", resize_ref(5, 7)},
      {"resize_bilinear_mixed", resize_ref(2, 8)},
      {"diffaug_translate", translate_ref()},
      {"diffaug_color", color_ref()},
      {"diffaug_cutout", cutout_ref()},
      {"spectral_norm_eval", spectral_ref(0)},
      {"spectral_norm_power", spectral_ref(1)},
      {"pad_circular1d", pad_ref(2)},
      {"pad_circular1d_full", pad_ref(3)},
      {"batchnorm_train_grouped", bn_grouped_ref()},
      {"noise_augment", noise_ref()},
  };
  auto it = refs.find(name);
  return it == refs.end() ? nullptr : it->second;
}

}  // namespace rae::test::ops
