#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "ops/optim.h"
#include "ops/step_scalars.h"

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

OptimSettings OptimSettings::from_config(const TrainConfig& c, int64_t steps_per_epoch) {
  OptimSettings s;
  s.schedule = LrSchedule::from_config(c, steps_per_epoch);
  s.beta1 = c.beta1, s.beta2 = c.beta2, s.eps = c.eps, s.weight_decay = c.weight_decay;
  s.clip_grad = c.clip_grad;
  s.ema_decay = c.ema_decay;
  return s;
}

AdamW::AdamW(std::vector<Tensor> params, std::vector<Tensor> grads, const OptimSettings& s)
    : params_(std::move(params)), grads_(std::move(grads)), s_(s) {
  RAE_CHECK(params_.size() == grads_.size(), "AdamW: ", params_.size(), " parameters, ",
            grads_.size(), " gradients");
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    RAE_CHECK(grads_[i].shape() == p.shape(), "AdamW: gradient ", i, " is ", grads_[i].str(),
              ", parameter ", p.str());
    m_.push_back(Tensor::zeros(p.shape(), DType::F32, p.device()));
    v_.push_back(Tensor::zeros(p.shape(), DType::F32, p.device()));
    ema_.push_back(p.clone());  // the EMA starts as a copy of the initial parameters
  }
}

ops::AdamWParams AdamW::next_params(double lr) const {
  ops::AdamWParams p;
  p.lr = lr, p.beta1 = s_.beta1, p.beta2 = s_.beta2, p.eps = s_.eps;
  p.weight_decay = s_.weight_decay;
  p.step = t_ + 1;
  return p;
}

void AdamW::step_scalars(const Tensor& scalars) {
  const ops::AdamWParams p = next_params(0.0);  // betas and eps; the rest from `scalars`
  for (size_t i = 0; i < params_.size(); ++i) {
    ops::adamw_step_scalars(params_[i], grads_[i], m_[i], v_[i], p, scalars);
    ops::ema_update_scalars(ema_[i], params_[i], s_.ema_decay, scalars);
  }
}

void AdamW::step(double lr, double grad_scale) {
  ops::AdamWParams p = next_params(lr);
  ++t_;
  p.grad_scale = grad_scale;
  for (size_t i = 0; i < params_.size(); ++i) {
    ops::adamw_step(params_[i], grads_[i], m_[i], v_[i], p);
    ops::ema_update(ema_[i], params_[i], s_.ema_decay);
  }
}

}  // namespace rae::train
