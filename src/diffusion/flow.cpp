#include "diffusion/flow.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace rae::diffusion {

void parse_time_dist(const std::string& spec, FlowConfig& cfg) {
  if (spec == "uniform") {
    cfg.time_dist = FlowConfig::TimeDist::Uniform;
    return;
  }
  const std::string pre = "logit-normal_";
  RAE_CHECK(spec.rfind(pre, 0) == 0, "time distribution '", spec,
            "': expected 'uniform' or 'logit-normal_MU_SIGMA'");
  std::string rest = spec.substr(pre.size());
  auto us = rest.find('_');
  RAE_CHECK(us != std::string::npos, "time distribution '", spec, "': missing sigma");
  try {
    cfg.mu = std::stod(rest.substr(0, us));
    cfg.sigma = std::stod(rest.substr(us + 1));
  } catch (const std::exception&) {
    RAE_THROW("time distribution '", spec, "': bad number");
  }
  RAE_CHECK(cfg.sigma > 0, "time distribution '", spec, "': sigma must be > 0");
  cfg.time_dist = FlowConfig::TimeDist::LogitNormal;
}

double time_shift(int64_t dim, double base) {
  return std::sqrt(static_cast<double>(dim) / base);
}

double apply_shift(double t, double a) {
  return a * t / (1.0 + (a - 1.0) * t);
}

double sample_time(const FlowConfig& cfg, uint64_t step, uint64_t sample) {
  rng::Key k{cfg.seed, rng::Purpose::Time, step, sample};
  double t;
  if (cfg.time_dist == FlowConfig::TimeDist::Uniform) {
    t = cfg.t0 + (cfg.t1 - cfg.t0) * rng::uniform_at(k, 0);
  } else {
    // Logit-normal truncated to [t0, t1]: draw Z ~ N(mu, sigma) and clamp sigmoid(Z). With
    // t1 = 0.999 and sigma = 1 the truncated mass is ~1e-12, so clamping equals truncation.
    double z = cfg.mu + cfg.sigma * rng::normal_at(k, 0);
    t = 1.0 / (1.0 + std::exp(-z));
    t = std::min(std::max(t, cfg.t0), cfg.t1);
  }
  return apply_shift(t, cfg.shift);
}

int32_t drop_label(const FlowConfig& cfg, uint64_t step, uint64_t sample, int32_t label) {
  if (cfg.class_dropout <= 0) return label;
  rng::Key k{cfg.seed, rng::Purpose::Dropout, step, sample};
  return rng::uniform_at(k, 0) < cfg.class_dropout ? static_cast<int32_t>(cfg.num_classes) : label;
}

void fill_noise(float* eps, int64_t n, uint64_t seed, uint64_t step, uint64_t sample) {
  rng::Key k{seed, rng::Purpose::Noise, step, sample};
  for (int64_t i = 0; i < n; ++i) eps[i] = rng::normal_at(k, static_cast<uint64_t>(i));
}

void make_training_batch(const FlowConfig& cfg, uint64_t step, const Tensor& x,
                         const Tensor& labels, const std::vector<int64_t>& ids, const Tensor& xt,
                         const Tensor& target, const Tensor& t, const Tensor& y) {
  const int64_t B = x.dim(0), D = x.numel() / B;
  RAE_CHECK(static_cast<int64_t>(ids.size()) == B, "make_training_batch: ", ids.size(),
            " ids for batch ", B);
  std::vector<float> eps(D);
  const float* xp = x.data<float>();
  float* xtp = xt.data<float>();
  float* up = target.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    uint64_t id = static_cast<uint64_t>(ids[b]);
    fill_noise(eps.data(), D, cfg.seed, step, id);
    float tb = static_cast<float>(sample_time(cfg, step, id));
    t.data<float>()[b] = tb;
    y.data<int32_t>()[b] = drop_label(cfg, step, id, labels.data<int32_t>()[b]);
    for (int64_t i = 0; i < D; ++i) {
      float xv = xp[b * D + i], e = eps[i];
      xtp[b * D + i] = (1.0f - tb) * xv + tb * e;
      up[b * D + i] = e - xv;
    }
  }
}

}  // namespace rae::diffusion
