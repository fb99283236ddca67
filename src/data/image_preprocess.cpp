#include "data/image_preprocess.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace rae::data {

namespace {

// ---- PIL (Pillow src/libImaging/Resample.c semantics) ----

constexpr int kPrecisionBits = 32 - 8 - 2;

double pil_box(double x) {
  return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
}
double pil_bicubic(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct PilCoeffs {
  int ksize = 0;
  std::vector<int> xmin, xcount;
  std::vector<int> k;  // fixed point, ksize per output
};

PilCoeffs pil_coeffs(int in_size, int out_size, PilFilter filter) {
  const double support0 = filter == PilFilter::Box ? 0.5 : 2.0;
  double scale = static_cast<double>(in_size) / out_size;
  double filterscale = std::max(scale, 1.0);
  double support = support0 * filterscale;
  PilCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.xcount.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = (xx + 0.5) * scale;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      double v = (x + xmin - center + 0.5) * ss;
      w[x] = filter == PilFilter::Box ? pil_box(v) : pil_bicubic(v);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[static_cast<size_t>(xx) * c.ksize + x] =
          v < 0 ? static_cast<int>(-0.5 + v * (1 << kPrecisionBits))
                : static_cast<int>(0.5 + v * (1 << kPrecisionBits));
    }
    c.xmin[xx] = xmin;
    c.xcount[xx] = xmax;
  }
  return c;
}

inline uint8_t pil_clip8(int v) {
  if (v <= 0) return 0;
  int r = v >> kPrecisionBits;
  return static_cast<uint8_t>(r > 255 ? 255 : r);
}

Image pil_horizontal(const Image& in, int out_w, PilFilter filter) {
  PilCoeffs c = pil_coeffs(in.width, out_w, filter);
  Image out = Image::make(out_w, in.height, in.channels);
  const int ch = in.channels;
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* s = in.row(y);
    uint8_t* d = out.row(y);
    for (int xx = 0; xx < out_w; ++xx) {
      const int* k = &c.k[static_cast<size_t>(xx) * c.ksize];
      for (int ci = 0; ci < ch; ++ci) {
        int ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < c.xcount[xx]; ++x) ss += s[(x + c.xmin[xx]) * ch + ci] * k[x];
        d[xx * ch + ci] = pil_clip8(ss);
      }
    }
  }
  return out;
}

Image pil_vertical(const Image& in, int out_h, PilFilter filter) {
  PilCoeffs c = pil_coeffs(in.height, out_h, filter);
  Image out = Image::make(in.width, out_h, in.channels);
  const int rowlen = in.width * in.channels;
  std::vector<int> acc(rowlen);
  for (int yy = 0; yy < out_h; ++yy) {
    const int* k = &c.k[static_cast<size_t>(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < c.xcount[yy]; ++y) {
      const uint8_t* s = in.row(y + c.xmin[yy]);
      for (int i = 0; i < rowlen; ++i) acc[i] += s[i] * k[y];
    }
    uint8_t* d = out.row(yy);
    for (int i = 0; i < rowlen; ++i) d[i] = pil_clip8(acc[i]);
  }
  return out;
}

}  // namespace

Image pil_resize(const Image& in, int out_w, int out_h, PilFilter filter) {
  RAE_CHECK(out_w > 0 && out_h > 0, "pil_resize: bad output size ", out_w, "x", out_h);
  Image cur = in;
  if (out_w != in.width) cur = pil_horizontal(cur, out_w, filter);
  if (out_h != in.height) cur = pil_vertical(cur, out_h, filter);
  return cur;
}

Image center_crop_arr(const Image& in, int size) {
  Image img = in;
  while (std::min(img.width, img.height) >= 2 * size)
    img = pil_resize(img, img.width / 2, img.height / 2, PilFilter::Box);
  double scale = static_cast<double>(size) / std::min(img.width, img.height);
  // Python's round(): half to even, as std::nearbyint in the default rounding mode.
  int w = static_cast<int>(std::nearbyint(img.width * scale));
  int h = static_cast<int>(std::nearbyint(img.height * scale));
  img = pil_resize(img, w, h, PilFilter::Bicubic);
  int y0 = (img.height - size) / 2, x0 = (img.width - size) / 2;
  Image out = Image::make(size, size, img.channels);
  for (int y = 0; y < size; ++y)
    std::copy_n(img.row(y0 + y) + static_cast<size_t>(x0) * img.channels,
                static_cast<size_t>(size) * img.channels, out.row(y));
  return out;
}

Image flip_horizontal(const Image& in) {
  Image out = Image::make(in.width, in.height, in.channels);
  const int ch = in.channels;
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < in.width; ++x)
      std::copy_n(in.row(y) + (in.width - 1 - x) * ch, ch, out.row(y) + x * ch);
  return out;
}

std::vector<float> to_encoder_input(const Image& rgb, int out_size,
                                    const std::array<float, 3>& mean,
                                    const std::array<float, 3>& std) {
  RAE_CHECK(rgb.channels == 3, "to_encoder_input: need RGB");
  const int h = rgb.height, w = rgb.width;
  std::vector<float> planar(static_cast<size_t>(3) * h * w);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        planar[(static_cast<size_t>(c) * h + y) * w + x] = rgb.row(y)[x * 3 + c] / 255.0f;
  if (h != out_size || w != out_size) {
    InterpWeights wy = torch_bicubic_weights(
        h, out_size, static_cast<double>(static_cast<float>(h) / out_size), false);
    InterpWeights wx = torch_bicubic_weights(
        w, out_size, static_cast<double>(static_cast<float>(w) / out_size), false);
    planar = resample_planar(planar, 3, h, w, wy, wx);
  }
  const size_t plane = static_cast<size_t>(out_size) * out_size;
  for (int c = 0; c < 3; ++c)
    for (size_t i = 0; i < plane; ++i)
      planar[c * plane + i] = (planar[c * plane + i] - mean[c]) / std[c];
  return planar;
}

}  // namespace rae::data
