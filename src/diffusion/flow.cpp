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

}  // namespace rae::diffusion
