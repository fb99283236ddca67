// The release's samplers (src/stage2/transport/: integrators.py, transport.py Sampler,
// path.py ICPlan; guidance in models/DDT.py forward_with_cfg / forward_with_autoguidance), for
// velocity-predicting models on the Linear path x_t = (1 - t) x + t eps (t = 1 is noise):
//
//   time grid  t_k = shift(1 - linspace(0, t_end, N)), shift(t) = a t / (1 + (a - 1) t), in
//              float32 as the release's torch code computes it (t_end = 0.999 for the ODE).
//   Euler      x <- x + (t_{k+1} - t_k) v(x, t_k)                  (torchdiffeq "euler")
//   Heun       k1 = v(x, t_k), k2 = v(x + dt k1, t_{k+1}), x <- x + dt (k1/2 + k2/2)
//                                                                 (torchdiffeq "heun2")
//   SDE        Euler-Maruyama on t_k = shift(1 - linspace(0, 1 - h, N)) (h = last_step_size):
//              score = ((t - 1) v - x) / t, drift = v - w(t) score,
//              x <- x - drift (t_k - t_{k+1}) + sqrt(2 w(t_k)) sqrt(t_k - t_{k+1}) xi_k,
//              then the "Mean" last step x <- x - drift(x, h) h at the UNSHIFTED time h (as the
//              release does; with a shift > 1 the sample therefore ends near t = shift(h) - h,
//              not at 0). w(t) is the diffusion form: constant (norm), sigma and linear
//              (norm t), decreasing, increasing-decreasing. The release's default "SBDM" is
//              -t/(1-t) in its t = 1-is-noise convention: negative, so its sqrt is NaN (and
//              -inf at t = 1); it is refused with an error instead.
//
// Guidance wraps velocities without knowing the model: classifier-free guidance batches [x; x]
// with [y; null] through one forward and returns v_null + s (v_y - v_null); AutoGuidance runs a
// second (smaller, weaker) guide model on the same (x, t, y) and returns g + s (v - g). Both only
// where t (float32, the model's input time) lies in [t_min, t_max]; elsewhere the conditional
// velocity v(x, t, y) alone (and the unconditional/guide forward is skipped).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::diffusion {

// out (B, ...) = v(x (B, ...), t, y (B) I32): one time for the whole batch. out and x are F32 on
// the model's device; y lives there too.
using Velocity = std::function<void(const Tensor& out, const Tensor& x, double t, const Tensor& y)>;

enum class SamplerKind { Euler, Heun, Sde };
enum class DiffusionForm { Constant, Sigma, Linear, Decreasing, IncreasingDecreasing, Sbdm };
enum class LastStep { None, Mean, Euler };

SamplerKind sampler_kind_from_name(const std::string& s);  // "euler", "heun", "sde"
const char* sampler_kind_name(SamplerKind k);
DiffusionForm diffusion_form_from_name(const std::string& s);  // the release's names
LastStep last_step_from_name(const std::string& s);            // "none", "mean", "euler"

struct SamplerOptions {
  SamplerKind kind = SamplerKind::Euler;
  int num_steps = 50;    // grid points (N - 1 integration steps), as the release's num_steps
  double shift = 1.0;    // a = sqrt(D / base)
  double t_end = 0.999;  // ODE: the last grid point before shifting is 1 - t_end
  DiffusionForm diffusion = DiffusionForm::Sigma;
  double diffusion_norm = 1.0;
  LastStep last_step = LastStep::Mean;
  double last_step_size = 0.04;  // the release's sample_sde default
};
// Refuses options the samplers cannot run (steps < 2, shift <= 0 or not finite, SBDM, ...),
// naming the option.
void validate(const SamplerOptions& opts);

// The grid the sampler steps through (float32 values, as the model sees them).
std::vector<double> time_grid(const SamplerOptions& opts);
// How many model evaluations one sample costs (before guidance doubles it).
int velocity_calls(const SamplerOptions& opts);

// SDE noise for integration step k (0 <= k < num_steps - 1): fill `out` (x's shape, device).
using StepNoise = std::function<void(int step, const Tensor& out)>;

// x (B, ...) F32: on entry the initial noise (t = 1), on return the sample. y (B) I32 on the
// velocity's device. `noise` is required for the SDE.
void sample(const SamplerOptions& opts, const Velocity& velocity, const Tensor& x, const Tensor& y,
            const StepNoise& noise = nullptr);

struct Guidance {
  enum class Method { None, Cfg, AutoGuidance } method = Method::None;
  double scale = 1.0;
  double t_min = 0.0, t_max = 1.0;
  int32_t null_label = 1000;  // CFG's unconditional class
  bool active_at(double t) const;
};
// Refuses a NaN/infinite scale, an empty interval (the release asserts t_min < t_max), a
// missing guide model.
void validate(const Guidance& g, bool have_guide_model);

// The guided velocity of `model` (and `guide` for AutoGuidance; may be empty otherwise).
// Buffers for the doubled CFG batch are kept between calls.
Velocity guided_velocity(Velocity model, Velocity guide, const Guidance& g);

}  // namespace rae::diffusion
