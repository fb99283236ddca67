#include "sampling/image_metrics.h"

#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace rae::sampling {

namespace {

constexpr int kRadius = 5;  // 11 x 11 window
constexpr double kSigma = 1.5, kC1 = 0.01 * 0.01, kC2 = 0.03 * 0.03;

std::array<double, 2 * kRadius + 1> gaussian_window() {
  std::array<double, 2 * kRadius + 1> g{};
  double sum = 0;
  for (int i = -kRadius; i <= kRadius; ++i) {
    const double d = i / kSigma;
    g[i + kRadius] = std::exp(-0.5 * d * d);
    sum += g[i + kRadius];
  }
  for (double& v : g) v /= sum;
  return g;
}

// torch's "reflect" padding index (the edge is not repeated).
int reflect(int i, int n) {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

// Separable Gaussian filter of a (h, w) plane padded by kRadius, evaluated at every pixel of the
// padded image for which the full window fits: the output is (h, w), as conv2d(pad(x)) gives.
std::vector<double> filter(const std::vector<double>& x, int h, int w) {
  static const auto g = gaussian_window();
  const int H = h + 2 * kRadius, W = w + 2 * kRadius;
  std::vector<double> padded(static_cast<size_t>(H) * W), rows(static_cast<size_t>(H) * w);
  for (int y = 0; y < H; ++y)
    for (int xx = 0; xx < W; ++xx)
      padded[static_cast<size_t>(y) * W + xx] =
          x[static_cast<size_t>(reflect(y - kRadius, h)) * w + reflect(xx - kRadius, w)];
  for (int y = 0; y < H; ++y)
    for (int xx = 0; xx < w; ++xx) {
      double s = 0;
      for (int k = 0; k <= 2 * kRadius; ++k)
        s += g[k] * padded[static_cast<size_t>(y) * W + xx + k];
      rows[static_cast<size_t>(y) * w + xx] = s;
    }
  std::vector<double> out(static_cast<size_t>(h) * w);
  for (int y = 0; y < h; ++y)
    for (int xx = 0; xx < w; ++xx) {
      double s = 0;
      for (int k = 0; k <= 2 * kRadius; ++k) s += g[k] * rows[static_cast<size_t>(y + k) * w + xx];
      out[static_cast<size_t>(y) * w + xx] = s;
    }
  return out;
}

}  // namespace

double psnr(const uint8_t* a, const uint8_t* b, int h, int w) {
  const size_t n = static_cast<size_t>(h) * w * 3;
  double se = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = (static_cast<double>(a[i]) - b[i]) / 255.0;
    se += d * d;
  }
  const double mse = std::max(se / static_cast<double>(n), 1e-10);
  return 20.0 * std::log10(1.0 / std::sqrt(mse));
}

double ssim(const uint8_t* a, const uint8_t* b, int h, int w) {
  RAE_CHECK(h > kRadius && w > kRadius, "ssim: images of ", h, " x ", w,
            " pixels are too small for the 11 x 11 window's reflect padding");
  const size_t n = static_cast<size_t>(h) * w;
  double total = 0;
  for (int c = 0; c < 3; ++c) {
    std::vector<double> x(n), y(n), xx(n), yy(n), xy(n);
    for (size_t i = 0; i < n; ++i) {
      x[i] = a[i * 3 + c] / 255.0, y[i] = b[i * 3 + c] / 255.0;
      xx[i] = x[i] * x[i], yy[i] = y[i] * y[i], xy[i] = x[i] * y[i];
    }
    auto mx = filter(x, h, w), my = filter(y, h, w);
    auto sxx = filter(xx, h, w), syy = filter(yy, h, w), sxy = filter(xy, h, w);
    for (size_t i = 0; i < n; ++i) {
      const double mxx = mx[i] * mx[i], myy = my[i] * my[i], mxy = mx[i] * my[i];
      const double vx = std::max(sxx[i] - mxx, 0.0), vy = std::max(syy[i] - myy, 0.0);
      const double cov = sxy[i] - mxy;
      total += ((2 * mxy + kC1) * (2 * cov + kC2)) / ((mxx + myy + kC1) * (vx + vy + kC2));
    }
  }
  return total / static_cast<double>(3 * n);
}

}  // namespace rae::sampling
