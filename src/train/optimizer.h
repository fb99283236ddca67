// The optimizer of every trained model: AdamW (decoupled weight decay, PyTorch semantics) with
// an EMA of the weights, both on the shards of the parameters this rank owns
// (distributed::ShardedParams::masters(); world size 1 owns everything), plus the release's
// learning-rate schedules. Clipping scales the gradients inside the AdamW update.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/optim.h"
#include "tensor/tensor.h"
#include "train/config.h"

namespace rae::train {

// The release's LambdaLR schedules (utils/optim_utils.py); `step` is 0-based.
struct LrSchedule {
  std::string type = "constant";
  double base_lr = 2e-4, final_lr = 2e-4;
  int64_t warmup_steps = 0, decay_end_steps = 0;
  bool warmup_from_zero = false;
  double lr_at(int64_t step) const;
  static LrSchedule from_config(const TrainConfig& c, int64_t steps_per_epoch);
};

// What one model's optimizer is configured with.
struct OptimSettings {
  LrSchedule schedule;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
  double clip_grad = 1.0;  // <= 0: no clipping
  double ema_decay = 0.9995;
  static OptimSettings from_config(const TrainConfig& c, int64_t steps_per_epoch);
};

class AdamW {
 public:
  // `params` and `grads`: flat F32 tensors of equal shapes (the owned shards); the moments and
  // the EMA (a copy of the parameters) get the same shapes on the same devices.
  AdamW(std::vector<Tensor> params, std::vector<Tensor> grads, const OptimSettings& s);
  // One update with the gradients scaled by `grad_scale` (clipping), then the EMA update.
  void step(double lr, double grad_scale);
  // The update's parameters at `lr` for the next step (step_count() + 1, grad_scale 1).
  ops::AdamWParams next_params(double lr) const;
  // The same update with lr, step, clip coefficient and the skip flag read from the step scalars
  // (ops/step_scalars.h; a CUDA graph's step), then the EMA; nothing when skipped. The caller
  // advances the step count once it knows the update ran (set_step_count).
  void step_scalars(const Tensor& scalars);
  int64_t step_count() const { return t_; }
  void set_step_count(int64_t t) { t_ = t; }
  const OptimSettings& settings() const { return s_; }
  // Per parameter tensor: the first and second moments and the EMA weights.
  const std::vector<Tensor>& m() const { return m_; }
  const std::vector<Tensor>& v() const { return v_; }
  const std::vector<Tensor>& ema() const { return ema_; }

 private:
  std::vector<Tensor> params_, grads_, m_, v_, ema_;
  OptimSettings s_;
  int64_t t_ = 0;
};

}  // namespace rae::train
