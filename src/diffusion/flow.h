// Flow matching as in the RAE release (transport with the Linear path, velocity prediction):
// x_t = (1 - t) x + t eps, target u = eps - x, loss = MSE over all elements. Timesteps are
// uniform or logit-normal(mu, sigma) on [0, 1 - 1/1000], then shifted by
// t' = a t / (1 + (a - 1) t) with a = sqrt(D / base). Every random draw is keyed by
// (seed, step, global sample index) so a sample's noise, time and label dropout do not depend
// on the rank or micro-batch that processes it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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
double apply_shift(double t, double shift);

double sample_time(const FlowConfig& cfg, uint64_t step, uint64_t sample);
int32_t drop_label(const FlowConfig& cfg, uint64_t step, uint64_t sample, int32_t label);
void fill_noise(float* eps, int64_t n, uint64_t seed, uint64_t step, uint64_t sample);

// One (micro-)batch: x (B, T, C) latents, labels (B) I32, global sample ids (B) ->
// xt, target (B, T, C), t (B) F32, y (B) I32 with class dropout applied.
void make_training_batch(const FlowConfig& cfg, uint64_t step, const Tensor& x,
                         const Tensor& labels, const std::vector<int64_t>& sample_ids,
                         const Tensor& xt, const Tensor& target, const Tensor& t, const Tensor& y);

// The samplers (Euler, Heun, Euler-Maruyama) and guidance: diffusion/samplers.h.

}  // namespace rae::diffusion
