// Flow matching as in the RAE release (transport with the Linear path, velocity prediction):
// x_t = (1 - t) x + t eps, target u = eps - x, loss = MSE over all elements. Timesteps are
// uniform or logit-normal(mu, sigma) on [0, 1 - 1/1000], then shifted by
// t' = a t / (1 + (a - 1) t) with a = sqrt(D / base). Every random draw is keyed by
// (seed, step, global sample index) so a sample's noise, time and label dropout do not depend
// on the rank or micro-batch that processes it.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "tensor/tensor.h"

namespace rae::diffusion {

struct FlowConfig {
  enum class TimeDist { Uniform, LogitNormal } time_dist = TimeDist::LogitNormal;
  double mu = 0.0, sigma = 1.0;
  double shift = 1.0;           // a = sqrt(D / base)
  double t0 = 0.0, t1 = 0.999;  // training interval (release: 1 - 1/1000)
  double class_dropout = 0.1;
  int64_t num_classes = 1000;  // the null label
  uint64_t seed = 0;
};

// Parses "uniform" or "logit-normal_MU_SIGMA" (the release's time_dist_type).
void parse_time_dist(const std::string& spec, FlowConfig& cfg);
double time_shift(int64_t dim, double base = 4096.0);  // sqrt(dim / base)
RAE_HD double apply_shift(double t, double a) {
  return a * t / (1.0 + (a - 1.0) * t);
}

// The per-sample draws, as plain data and host/device functions (the same code runs in the CPU
// loop and in the CUDA kernel of draw_flow_batch, so both give the same values up to the last
// bit of the device's double exp, which the float rounding of t absorbs in practice).
struct FlowDraws {
  uint64_t seed = 0, step = 0;
  int logit_normal = 1;
  double mu = 0, sigma = 1, t0 = 0, t1 = 0.999, shift = 1;
  double class_dropout = 0;
  int32_t null_label = 0;
  static FlowDraws of(const FlowConfig& cfg, uint64_t step);
};
RAE_HD float flow_time(const FlowDraws& d, uint64_t sample) {
  rng::Key k{d.seed, rng::Purpose::Time, d.step, sample};
  double t;
  if (!d.logit_normal) {
    t = d.t0 + (d.t1 - d.t0) * rng::uniform_at(k, 0);
  } else {
    // Logit-normal truncated to [t0, t1]: draw Z ~ N(mu, sigma) and clamp sigmoid(Z). With
    // t1 = 0.999 and sigma = 1 the truncated mass is ~1e-12, so clamping equals truncation.
    const double z = d.mu + d.sigma * rng::normal_at(k, 0);
    t = 1.0 / (1.0 + exp(-z));
    t = t < d.t0 ? d.t0 : (t > d.t1 ? d.t1 : t);
  }
  return static_cast<float>(apply_shift(t, d.shift));
}
RAE_HD int32_t flow_label(const FlowDraws& d, uint64_t sample, int32_t label) {
  if (d.class_dropout <= 0) return label;
  rng::Key k{d.seed, rng::Purpose::Dropout, d.step, sample};
  return rng::uniform_at(k, 0) < d.class_dropout ? d.null_label : label;
}
RAE_HD float flow_noise(const FlowDraws& d, uint64_t sample, uint64_t i) {
  return rng::normal_at(rng::Key{d.seed, rng::Purpose::Noise, d.step, sample}, i);
}

double sample_time(const FlowConfig& cfg, uint64_t step, uint64_t sample);
int32_t drop_label(const FlowConfig& cfg, uint64_t step, uint64_t sample, int32_t label);

// One (micro-)batch's draws, on the device of the tensors (CPU, or CUDA with a kernel): for
// global sample ids (B) I64 and labels (B) I32: eps (B, ...) F32 noise, t (B) F32 shifted times,
// y (B) I32 with class dropout applied. Then ops::flow_interpolate(xt, target, x, eps, t) gives
// x_t = (1 - t) x + t eps and the target eps - x.
void draw_flow_batch(const FlowConfig& cfg, uint64_t step, const Tensor& ids, const Tensor& labels,
                     const Tensor& eps, const Tensor& t, const Tensor& y);
namespace cuda {
void draw_flow_batch(const FlowDraws& d, const Tensor& ids, const Tensor& labels, const Tensor& eps,
                     const Tensor& t, const Tensor& y);
}

// The samplers (Euler, Heun, Euler-Maruyama) and guidance: diffusion/samplers.h.

}  // namespace rae::diffusion
