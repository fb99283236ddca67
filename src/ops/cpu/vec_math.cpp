// Vectorisable row kernels shared by the CPU ops (declared in cpu_util.h): a polynomial float
// exp, row max/sum/scale, sums of squares, SiLU/SwiGLU rows, column accumulation and the
// RMSNorm+modulation backward row. The project builds for baseline x86-64 (SSE2), so
// each kernel is compiled several times through GCC function multiversioning (RAE_VEC_CLONES:
// AVX-512, AVX2 + FMA and baseline clones), one picked once at load time by the CPU. Loops are
// written with fixed lane accumulators so GCC vectorises them without -ffast-math and the summation
// order is fixed (results do not depend on threads; they may differ in the last bits between
// clones, i.e. between CPUs). src/CMakeLists.txt compiles this file with -fno-math-errno
// -fno-trapping-math, without which GCC keeps the compare/selects of the exp and sqrt scalar.
#include <bit>
#include <cmath>
#include <cstdint>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

namespace {

constexpr int kLanes = 16;  // independent accumulators

// exp(x) for float: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by the
// degree-7 minimax polynomial of Cephes' expf (about 1 ulp), times 2^n built in the exponent
// bits. Inputs below -87.3 (where 2^n would leave the normal range) give 0, inputs above 88
// are clamped to 88 (softmax inputs are <= 0). Branch-free so loops over it vectorise.
inline float exp_poly(float x) {
  const float lo = -87.33654f, hi = 88.0f;  // 2^n stays normal for n in [-126, 127]
  const bool underflow = x < lo;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  // n = round(x / ln2) with the 1.5 * 2^23 trick (exact for |x / ln2| < 2^22)
  const float magic = 12582912.0f;
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(magic);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const float pow2n = std::bit_cast<float>((ni + 127) << 23);
  return underflow ? 0.0f : p * pow2n;
}

}  // namespace

RAE_VEC_CLONES double exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  for (int64_t j = 0; j < n; ++j) y[j] = exp_poly(x[j] - shift);
  // fixed double lanes: the order does not depend on threads, and float lanes could overflow
  // (16 values near exp(88)) or lose digits on long rows
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += y[j + k];
  double s = 0;
  for (int k = 0; k < kLanes; ++k) s += acc[k];
  for (; j < n; ++j) s += y[j];
  return s;
}

RAE_VEC_CLONES float row_max(const float* x, int64_t n) {
  float m = x[0];
  int64_t j = 0;
  if (n >= kLanes) {
    float acc[kLanes];
    for (int k = 0; k < kLanes; ++k) acc[k] = x[k];
    for (j = kLanes; j + kLanes <= n; j += kLanes)
      for (int k = 0; k < kLanes; ++k) acc[k] = acc[k] < x[j + k] ? x[j + k] : acc[k];
    for (int k = 0; k < kLanes; ++k) m = m < acc[k] ? acc[k] : m;
  }
  for (; j < n; ++j) m = m < x[j] ? x[j] : m;
  return m;
}

RAE_VEC_CLONES void scale_inplace(float* y, int64_t n, float a) {
  for (int64_t j = 0; j < n; ++j) y[j] *= a;
}

namespace {

template <typename T>
inline double sum_squares_impl(const T* x, int64_t n) {
  constexpr int L = 8;
  double acc[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int k = 0; k < L; ++k) acc[k] += static_cast<double>(x[j + k]) * x[j + k];
  double s = 0;
  for (int k = 0; k < L; ++k) s += acc[k];
  for (; j < n; ++j) s += static_cast<double>(x[j]) * x[j];
  return s;
}

}  // namespace

RAE_VEC_CLONES double sum_squares(const float* x, int64_t n) {
  return sum_squares_impl(x, n);
}
RAE_VEC_CLONES double sum_squares(const double* x, int64_t n) {
  return sum_squares_impl(x, n);
}

namespace {

// y = T(x * rstd) * w * (1 + s) + b; w and b point at ones and zeros when the op has none
// (multiplying by 1 and adding 0 leave the value unchanged), so the loop has no branches.
template <typename T>
inline void rms_modulate_impl(const T* x, double rstd, const T* w, const T* s, const T* b, T* y,
                              int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T h = static_cast<T>(x[j] * rstd) * w[j];
    y[j] = h * (T(1) + s[j]) + b[j];
  }
}

}  // namespace

RAE_VEC_CLONES void rms_modulate_row(const float* x, double rstd, const float* w, const float* s,
                                     const float* b, float* y, int64_t n) {
  rms_modulate_impl(x, rstd, w, s, b, y, n);
}
RAE_VEC_CLONES void rms_modulate_row(const double* x, double rstd, const double* w, const double* s,
                                     const double* b, double* y, int64_t n) {
  rms_modulate_impl(x, rstd, w, s, b, y, n);
}

namespace {

// sigmoid(x) = 1 / (1 + exp(-x)) with the polynomial exp: exp(-x) is 0 for x > 87.3 (sigmoid 1)
// and clamped at exp(88) for x < -88 (sigmoid about 6e-39 instead of its true, smaller value).
inline float sigmoid_poly(float x) {
  return 1.0f / (1.0f + exp_poly(-x));
}

}  // namespace

RAE_VEC_CLONES void silu_row(const float* x, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = x[j] * sigmoid_poly(x[j]);
}

RAE_VEC_CLONES void silu_backward_row(const float* x, const float* dy, float* gx, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float s = sigmoid_poly(x[j]);
    gx[j] += dy[j] * s * (1.0f + x[j] * (1.0f - s));
  }
}

RAE_VEC_CLONES void swiglu_row(const float* x1, const float* x2, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = x1[j] * sigmoid_poly(x1[j]) * x2[j];
}

RAE_VEC_CLONES void swiglu_backward_row(const float* x1, const float* x2, const float* dy,
                                        float* g1, float* g2, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float s = sigmoid_poly(x1[j]);
    g1[j] += dy[j] * x2[j] * s * (1.0f + x1[j] * (1.0f - s));
    g2[j] += dy[j] * (x1[j] * s);
  }
}

RAE_VEC_CLONES void accumulate_row(double* acc, const float* x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += x[j];
}
RAE_VEC_CLONES void accumulate_row(double* acc, const double* x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += x[j];
}

RAE_VEC_CLONES void rms_modulate_backward_row(const float* x, const float* dy, const float* s,
                                              const float* w, double rstd, double* ssh, double* ssc,
                                              double* dw, double* gy, float* dx, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const double xh = x[j] * rstd;                                // normalized x
    const double nrm = xh * w[j];                                 // rmsnorm output
    const double dn = dy[j] * (1.0 + static_cast<double>(s[j]));  // d rmsnorm output
    ssh[j] += dy[j];
    ssc[j] += dy[j] * nrm;
    gy[j] = dn * w[j];  // d xhat
    dw[j] += dn * xh;
  }
  if (!dx) return;
  // dx += rstd * (gy - xhat * mean(gy * xhat)), the dot over fixed lanes
  constexpr int L = 8;
  double acc[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int k = 0; k < L; ++k) acc[k] += gy[j + k] * (x[j + k] * rstd);
  double dot = 0;
  for (int k = 0; k < L; ++k) dot += acc[k];
  for (; j < n; ++j) dot += gy[j] * (x[j] * rstd);
  const double m = dot / static_cast<double>(n);
  for (j = 0; j < n; ++j) dx[j] += static_cast<float>(rstd * (gy[j] - x[j] * rstd * m));
}

}  // namespace rae::ops::cpu
