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

FlowDraws FlowDraws::of(const FlowConfig& cfg, uint64_t step) {
  FlowDraws d;
  d.seed = cfg.seed, d.step = step;
  d.logit_normal = cfg.time_dist == FlowConfig::TimeDist::LogitNormal ? 1 : 0;
  d.mu = cfg.mu, d.sigma = cfg.sigma, d.t0 = cfg.t0, d.t1 = cfg.t1, d.shift = cfg.shift;
  d.class_dropout = cfg.class_dropout;
  d.null_label = static_cast<int32_t>(cfg.num_classes);
  return d;
}

double sample_time(const FlowConfig& cfg, uint64_t step, uint64_t sample) {
  return flow_time(FlowDraws::of(cfg, step), sample);
}

int32_t drop_label(const FlowConfig& cfg, uint64_t step, uint64_t sample, int32_t label) {
  return flow_label(FlowDraws::of(cfg, step), sample, label);
}

void draw_flow_batch(const FlowConfig& cfg, uint64_t step, const Tensor& ids, const Tensor& labels,
                     const Tensor& eps, const Tensor& t, const Tensor& y) {
  const int64_t B = ids.numel();
  RAE_CHECK(ids.dtype() == DType::I64 && labels.dtype() == DType::I32 && labels.numel() == B &&
                t.dtype() == DType::F32 && t.numel() == B && y.dtype() == DType::I32 &&
                y.numel() == B && eps.dtype() == DType::F32 && eps.is_contiguous() &&
                eps.defined() && eps.dim(0) == B,
            "draw_flow_batch: ids ", ids.str(), ", labels ", labels.str(), ", eps ", eps.str(),
            ", t ", t.str(), ", y ", y.str());
  for (const Tensor* x : {&labels, &eps, &t, &y})
    RAE_CHECK(x->device() == ids.device(), "draw_flow_batch: ", x->str(), " is not on ",
              ids.device().str());
  const FlowDraws d = FlowDraws::of(cfg, step);
  if (ids.is_cuda()) return cuda::draw_flow_batch(d, ids, labels, eps, t, y);
  const int64_t D = eps.numel() / std::max<int64_t>(B, 1);
  const int64_t* id = ids.data<int64_t>();
  float* e = eps.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t sample = static_cast<uint64_t>(id[b]);
    t.data<float>()[b] = flow_time(d, sample);
    y.data<int32_t>()[b] = flow_label(d, sample, labels.data<int32_t>()[b]);
    for (int64_t i = 0; i < D; ++i) e[b * D + i] = flow_noise(d, sample, static_cast<uint64_t>(i));
  }
}

#ifndef RAE_WITH_CUDA
namespace cuda {
void draw_flow_batch(const FlowDraws&, const Tensor& ids, const Tensor&, const Tensor&,
                     const Tensor&, const Tensor&) {
  RAE_THROW("draw_flow_batch on ", ids.str(), ": a build without CUDA");
}
}  // namespace cuda
#endif

std::vector<double> sampler_grid(const SamplerConfig& cfg) {
  RAE_CHECK(cfg.num_steps >= 2, "sampler: num_steps must be >= 2, got ", cfg.num_steps);
  std::vector<double> g(cfg.num_steps);
  for (int i = 0; i < cfg.num_steps; ++i) {
    double lin = cfg.t_last * i / (cfg.num_steps - 1);
    g[i] = apply_shift(1.0 - lin, cfg.shift);
  }
  return g;
}

void euler_sample(const SamplerConfig& cfg, const VelocityFn& velocity, const Tensor& x,
                  const Tensor& labels, int32_t null_label) {
  const int64_t B = x.dim(0), D = x.numel() / B;
  const bool use_cfg = cfg.cfg_scale != 1.0;
  const int64_t B2 = use_cfg ? 2 * B : B;
  Shape s2 = x.shape();
  s2[0] = B2;
  Tensor xin = Tensor::empty(s2), v = Tensor::empty(s2);
  Tensor tt = Tensor::empty({B2}), yy = Tensor::empty({B2}, DType::I32);
  for (int64_t b = 0; b < B2; ++b)
    yy.data<int32_t>()[b] = b < B ? labels.data<int32_t>()[b] : null_label;
  auto grid = sampler_grid(cfg);
  float* xp = x.data<float>();
  for (size_t k = 0; k + 1 < grid.size(); ++k) {
    const double tc = grid[k], dt = grid[k + 1] - grid[k];
    for (int64_t b = 0; b < B2; ++b) tt.data<float>()[b] = static_cast<float>(tc);
    std::copy(xp, xp + B * D, xin.data<float>());
    if (use_cfg) std::copy(xp, xp + B * D, xin.data<float>() + B * D);
    velocity(v, xin, tt, yy);
    const float* vp = v.data<float>();
    const bool guide = use_cfg && tc >= cfg.cfg_t_min && tc <= cfg.cfg_t_max;
    for (int64_t i = 0; i < B * D; ++i) {
      double vi = vp[i];
      if (guide) vi = vp[B * D + i] + cfg.cfg_scale * (vp[i] - vp[B * D + i]);
      xp[i] = static_cast<float>(xp[i] + dt * vi);
    }
  }
}

}  // namespace rae::diffusion
