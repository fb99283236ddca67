// AdamW with EMA over the ParamStore's flat per-group buffers, LR schedules, global-norm
// clipping. Reductions here run in a fixed order (per group, fixed chunks, double accumulation)
// so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/params.h"
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

// Sum of squares of a flat F32 buffer, deterministic (chunks of 4096 in order, double).
double deterministic_sum_squares(const Tensor& flat);

class AdamW {
 public:
  AdamW(nn::ParamStore& ps, double beta1, double beta2, double eps, double weight_decay);
  // One update with grads scaled by `grad_scale` (clipping); increments the step count.
  void step(double lr, double grad_scale);
  int64_t step_count() const { return t_; }
  void set_step_count(int64_t t) { t_ = t; }
  std::vector<Tensor>& m() { return m_; }
  std::vector<Tensor>& v() { return v_; }

 private:
  nn::ParamStore& ps_;
  double b1_, b2_, eps_, wd_;
  int64_t t_ = 0;
  std::vector<Tensor> m_, v_;  // per group, flat
};

class Ema {
 public:
  explicit Ema(const nn::ParamStore& ps);  // starts as a copy of the parameters
  void update(const nn::ParamStore& ps, double decay);
  std::vector<Tensor>& buffers() { return ema_; }

 private:
  std::vector<Tensor> ema_;
};

// sqrt(sum over groups of sum of squares of grads), in group order.
double global_grad_norm(const nn::ParamStore& ps);

}  // namespace rae::train
