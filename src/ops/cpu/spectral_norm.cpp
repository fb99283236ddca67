// CPU spectral normalisation: matrix-vector products and norms in double, sequential (the
// matrices are small), so results repeat bit for bit.
#include "ops/spectral_norm.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// t / max(||t||, eps) in place.
void normalize(std::vector<double>& t, double eps) {
  double s = 0;
  for (double x : t) s += x * x;
  const double n = std::max(std::sqrt(s), eps);
  for (double& x : t) x /= n;
}

}  // namespace

void spectral_norm_forward(const Tensor& w_sn, const Tensor& sigma, const Tensor& w,
                           const Tensor& u, const Tensor& v, int power_iterations, double eps) {
  const int64_t O = w.dim(0), K = w.numel() / O;
  float_dispatch(w.dtype(), "spectral_norm_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* W = ptr<T>(w);
    T *up = ptr<T>(u), *vp = ptr<T>(v);
    std::vector<double> uu(up, up + O), vv(vp, vp + K), wv(static_cast<size_t>(O));
    auto mv = [&]() {  // wv = W v
      for (int64_t o = 0; o < O; ++o) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += static_cast<double>(W[o * K + k]) * vv[k];
        wv[o] = s;
      }
    };
    for (int it = 0; it < power_iterations; ++it) {
      std::fill(vv.begin(), vv.end(), 0.0);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t k = 0; k < K; ++k) vv[k] += static_cast<double>(W[o * K + k]) * uu[o];
      normalize(vv, eps);
      mv();
      uu = wv;
      normalize(uu, eps);
      // The buffers keep the dtype's rounding, as PyTorch's in-place normalize does.
      for (int64_t o = 0; o < O; ++o) uu[o] = static_cast<double>(up[o] = static_cast<T>(uu[o]));
      for (int64_t k = 0; k < K; ++k) vv[k] = static_cast<double>(vp[k] = static_cast<T>(vv[k]));
    }
    mv();
    double s = 0;
    for (int64_t o = 0; o < O; ++o) s += uu[o] * wv[o];
    const T sg = static_cast<T>(s);
    ptr<T>(sigma)[0] = sg;
    T* out = ptr<T>(w_sn);
    for (int64_t i = 0; i < O * K; ++i) out[i] = W[i] / sg;
  });
}

void spectral_norm_backward(const Tensor& dw, const Tensor& dw_sn, const Tensor& w, const Tensor& u,
                            const Tensor& v, const Tensor& sigma) {
  const int64_t O = w.dim(0), K = w.numel() / O;
  float_dispatch(w.dtype(), "spectral_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *W = ptr<T>(w), *G = ptr<T>(dw_sn), *up = ptr<T>(u), *vp = ptr<T>(v);
    const double sg = static_cast<double>(ptr<T>(sigma)[0]);
    double dot = 0;
    for (int64_t i = 0; i < O * K; ++i) dot += static_cast<double>(G[i]) * W[i];
    const double c = dot / (sg * sg);
    T* D = ptr<T>(dw);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < K; ++k)
        D[o * K + k] += static_cast<T>(G[o * K + k] / sg - c * up[o] * vp[k]);
  });
}

}  // namespace rae::ops::cpu
