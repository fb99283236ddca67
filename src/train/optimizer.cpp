#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "ops/elementwise.h"
#include "ops/optim.h"

namespace rae::train {

double LrSchedule::lr_at(int64_t step) const {
  if (type == "constant") return base_lr;
  const double final_ratio = base_lr > 0 ? final_lr / base_lr : 1.0;
  double f;
  if (step < warmup_steps) {
    f = warmup_from_zero ? static_cast<double>(step + 1) / warmup_steps : 1.0;
  } else if (step >= decay_end_steps) {
    f = final_ratio;
  } else {
    const int64_t total = std::max<int64_t>(decay_end_steps - warmup_steps, 1);
    const double progress = static_cast<double>(step - warmup_steps) / total;
    if (type == "linear")
      f = 1.0 - (1.0 - final_ratio) * progress;
    else
      f = final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return base_lr * f;
}

LrSchedule LrSchedule::from_config(const TrainConfig& c, int64_t steps_per_epoch) {
  LrSchedule s;
  s.type = c.schedule;
  s.base_lr = c.lr;
  s.final_lr = c.final_lr < 0 ? c.lr : c.final_lr;
  s.warmup_steps = c.warmup_epochs >= 0 ? static_cast<int64_t>(c.warmup_epochs * steps_per_epoch)
                                        : c.warmup_steps;
  s.decay_end_steps = c.decay_end_epoch >= 0
                          ? static_cast<int64_t>(c.decay_end_epoch * steps_per_epoch)
                          : c.decay_end_steps;
  s.warmup_steps = std::max<int64_t>(s.warmup_steps, 0);
  s.decay_end_steps = std::max(s.decay_end_steps, s.warmup_steps);
  s.warmup_from_zero = c.warmup_from_zero;
  return s;
}

double deterministic_sum_squares(const Tensor& flat) {
  const float* p = flat.data<float>();
  const int64_t n = flat.numel();
  double total = 0;
  for (int64_t i = 0; i < n; i += 4096) {
    double part = 0;
    const int64_t e = std::min(n, i + 4096);
    for (int64_t j = i; j < e; ++j) part += static_cast<double>(p[j]) * p[j];
    total += part;
  }
  return total;
}

double global_grad_norm(const nn::ParamStore& ps) {
  double s = 0;
  for (auto& g : ps.groups())
    s += g.grad.is_cuda() ? ops::sum_squares(g.grad) : deterministic_sum_squares(g.grad);
  return std::sqrt(s);
}

AdamW::AdamW(nn::ParamStore& ps, double beta1, double beta2, double eps, double weight_decay)
    : ps_(ps), b1_(beta1), b2_(beta2), eps_(eps), wd_(weight_decay) {
  for (auto& g : ps.groups()) {
    m_.push_back(Tensor::zeros({g.numel}, DType::F32, g.data.device()));
    v_.push_back(Tensor::zeros({g.numel}, DType::F32, g.data.device()));
  }
}

void AdamW::step(double lr, double grad_scale) {
  ++t_;
  ops::AdamWParams p;
  p.lr = lr, p.beta1 = b1_, p.beta2 = b2_, p.eps = eps_, p.weight_decay = wd_;
  p.step = t_;
  p.grad_scale = grad_scale;
  auto& groups = ps_.groups();
  for (size_t i = 0; i < groups.size(); ++i)
    ops::adamw_step(groups[i].data, groups[i].grad, m_[i], v_[i], p);
}

Ema::Ema(const nn::ParamStore& ps) {
  for (auto& g : ps.groups()) ema_.push_back(g.data.clone());
}

void Ema::update(const nn::ParamStore& ps, double decay) {
  auto& groups = ps.groups();
  for (size_t i = 0; i < groups.size(); ++i) ops::ema_update(ema_[i], groups[i].data, decay);
}

}  // namespace rae::train
