// CPU optimizer kernels: PyTorch's AdamW (single-tensor path, same operation order) and EMA.
// The AdamW loop is branch-free and multiversioned (RAE_VEC_CLONES_V3) so GCC vectorises it; this
// file is compiled with -fno-math-errno (src/CMakeLists.txt) so that sqrt vectorises too.
#include "ops/optim.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

struct AdamWConsts {
  double decay, gs, w1, b2, one_b2, step_size, bc2_sqrt, eps;
};

// One AdamW update over a contiguous span, in torch's operation order. Branch-free: a grad
// scale of 1 and a decay factor of exactly 1 (weight_decay 0) leave values unchanged, and the
// lerp formula (torch picks it by the weight, loop-invariant) is a template argument.
template <typename T, bool kSmallWeight>
inline void adamw_span(T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict v,
                       int64_t n, const AdamWConsts& c) {
  const T decay = static_cast<T>(c.decay), gs = static_cast<T>(c.gs), w1 = static_cast<T>(c.w1);
  const T b2 = static_cast<T>(c.b2), one_b2 = static_cast<T>(c.one_b2);
  const T step_size = static_cast<T>(c.step_size), bc2_sqrt = static_cast<T>(c.bc2_sqrt);
  const T eps = static_cast<T>(c.eps);
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] * gs;
    const T wi = w[i] * decay;
    // m.lerp_(g, 1 - beta1)
    const T mi = kSmallWeight ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * (T(1) - w1);
    const T vi = v[i] * b2 + one_b2 * gi * gi;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    w[i] = wi - step_size * mi / denom;  // addcdiv: (value * m) / denom
    m[i] = mi;
    v[i] = vi;
  }
}

template <typename T>
inline void adamw_span_any(T* w, const T* g, T* m, T* v, int64_t n, const AdamWConsts& c) {
  if (static_cast<T>(c.w1) < T(0.5))
    adamw_span<T, true>(w, g, m, v, n, c);
  else
    adamw_span<T, false>(w, g, m, v, n, c);
}

RAE_VEC_CLONES_V3 void adamw_kernel(float* w, const float* g, float* m, float* v, int64_t n,
                                    const AdamWConsts& c) {
  adamw_span_any(w, g, m, v, n, c);
}
RAE_VEC_CLONES_V3 void adamw_kernel(double* w, const double* g, double* m, double* v, int64_t n,
                                    const AdamWConsts& c) {
  adamw_span_any(w, g, m, v, n, c);
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p) {
  float_dispatch(param.dtype(), "adamw_step", [&](auto tag) {
    using T = decltype(tag);
    T *w = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T* g = ptr<T>(grad);
    const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
    const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
    AdamWConsts c;
    c.decay = 1.0 - p.lr * p.weight_decay;  // exactly 1 without weight decay
    c.gs = p.grad_scale;
    c.w1 = 1.0 - p.beta1;  // lerp weight
    c.b2 = p.beta2;
    c.one_b2 = 1.0 - p.beta2;
    c.step_size = p.lr / bc1;
    c.bc2_sqrt = std::sqrt(bc2);
    c.eps = p.eps;
    parallel_blocks(param.numel(), 16384, [&](int64_t i0, int64_t i1) {
      adamw_kernel(w + i0, g + i0, mp + i0, vp + i0, i1 - i0, c);
    });
  });
}

void ema_update(const Tensor& ema, const Tensor& param, double decay) {
  float_dispatch(ema.dtype(), "ema_update", [&](auto tag) {
    using T = decltype(tag);
    T* e = ptr<T>(ema);
    const T* w = ptr<T>(param);
    const T d = static_cast<T>(decay), a = static_cast<T>(1.0 - decay);
    // release: ema.mul_(decay).add_(param, alpha=1 - decay)
    parallel_blocks(ema.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) e[i] = e[i] * d + w[i] * a;
    });
  });
}

}  // namespace rae::ops::cpu
