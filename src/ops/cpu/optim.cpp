// CPU optimizer kernels: PyTorch's AdamW (single-tensor path, same operation order) and EMA.
#include "ops/optim.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& p) {
  float_dispatch(param.dtype(), "adamw_step", [&](auto tag) {
    using T = decltype(tag);
    T *w = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T* g = ptr<T>(grad);
    const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
    const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
    const T decay = static_cast<T>(1.0 - p.lr * p.weight_decay);
    const T gs = static_cast<T>(p.grad_scale);
    const T w1 = static_cast<T>(1.0 - p.beta1);  // lerp weight
    const T b2 = static_cast<T>(p.beta2), one_b2 = static_cast<T>(1.0 - p.beta2);
    const T step_size = static_cast<T>(p.lr / bc1);
    const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T eps = static_cast<T>(p.eps);
    const bool apply_scale = p.grad_scale != 1.0, apply_decay = p.weight_decay != 0.0;
    parallel_blocks(param.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T gi = apply_scale ? g[i] * gs : g[i];
        if (apply_decay) w[i] *= decay;
        // m.lerp_(g, 1 - beta1), as torch's lerp picks its formula by the weight
        if (w1 < T(0.5))
          mp[i] = mp[i] + w1 * (gi - mp[i]);
        else
          mp[i] = gi - (gi - mp[i]) * (T(1) - w1);
        vp[i] = vp[i] * b2 + one_b2 * gi * gi;
        const T denom = std::sqrt(vp[i]) / bc2_sqrt + eps;
        w[i] = w[i] - step_size * mp[i] / denom;  // addcdiv: (value * m) / denom
      }
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
