#include "diffusion/samplers.h"

#include <cmath>

#include "core/error.h"
#include "ops/elementwise.h"

namespace rae::diffusion {

namespace {

constexpr double kPi = 3.14159265358979323846;

// torch.linspace(start, end, n) in float32 (ATen's CPU kernel: a float step, the first half
// counted from `start`, the second half back from `end`).
std::vector<float> linspace_f32(float start, float end, int n) {
  std::vector<float> v(n);
  if (n == 1) return {start};
  const float step = (end - start) / static_cast<float>(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i)
    v[i] = i < halfway ? start + step * static_cast<float>(i)
                       : end - step * static_cast<float>(n - i - 1);
  return v;
}

// The release's shift on a float32 tensor: a * t / (1 + (a - 1) * t), scalars cast to float32.
float shift_f32(float t, double a) {
  const float af = static_cast<float>(a), am1 = static_cast<float>(a - 1.0);
  const float num = af * t;
  const float den = 1.0f + am1 * t;
  return num / den;
}

// w(t) of ICPlan.compute_diffusion with the release's time convention (t = 1 is noise).
double diffusion_at(const SamplerOptions& o, double t) {
  switch (o.diffusion) {
    case DiffusionForm::Constant:
      return o.diffusion_norm;
    case DiffusionForm::Sigma:
    case DiffusionForm::Linear:
      return o.diffusion_norm * t;
    case DiffusionForm::Decreasing: {
      double c = o.diffusion_norm * std::cos(kPi * (1.0 - t)) + 1.0;
      return 0.25 * c * c;
    }
    case DiffusionForm::IncreasingDecreasing: {
      double s = std::sin(kPi * (1.0 - t));
      return o.diffusion_norm * s * s;
    }
    case DiffusionForm::Sbdm:
      break;
  }
  RAE_THROW("sampler: diffusion form SBDM is not supported (see validate())");
}

// x <- x - h * drift(x, t) for the SDE drift v - w score with score = ((t - 1) v - x) / t,
// i.e. drift = a v + b x with a = 1 - w (t - 1) / t and b = w / t. `v` holds v(x, t).
void sde_drift_step(const Tensor& x, const Tensor& v, double t, double w, double h) {
  const double a = 1.0 - w * (t - 1.0) / t, b = w / t;
  ops::scale_(x, 1.0 - h * b);
  ops::add_(x, v, -h * a);
}

}  // namespace

SamplerKind sampler_kind_from_name(const std::string& s) {
  if (s == "euler") return SamplerKind::Euler;
  if (s == "heun") return SamplerKind::Heun;
  if (s == "sde") return SamplerKind::Sde;
  RAE_THROW("unknown sampler '", s, "' (known: euler, heun, sde)");
}

const char* sampler_kind_name(SamplerKind k) {
  switch (k) {
    case SamplerKind::Euler:
      return "euler";
    case SamplerKind::Heun:
      return "heun";
    case SamplerKind::Sde:
      return "sde";
  }
  return "?";
}

DiffusionForm diffusion_form_from_name(const std::string& s) {
  if (s == "constant") return DiffusionForm::Constant;
  if (s == "sigma") return DiffusionForm::Sigma;
  if (s == "linear") return DiffusionForm::Linear;
  if (s == "decreasing") return DiffusionForm::Decreasing;
  if (s == "increasing-decreasing" || s == "inccreasing-decreasing")  // the release's spelling
    return DiffusionForm::IncreasingDecreasing;
  if (s == "SBDM" || s == "sbdm") return DiffusionForm::Sbdm;
  RAE_THROW("unknown SDE diffusion form '", s,
            "' (known: constant, sigma, linear, decreasing, increasing-decreasing)");
}

LastStep last_step_from_name(const std::string& s) {
  if (s == "none") return LastStep::None;
  if (s == "mean" || s == "Mean") return LastStep::Mean;
  if (s == "euler" || s == "Euler") return LastStep::Euler;
  RAE_THROW("unknown SDE last step '", s, "' (known: none, mean, euler)");
}

void validate(const SamplerOptions& o) {
  RAE_CHECK(o.num_steps >= 2, "sampler: --steps must be >= 2, got ", o.num_steps);
  // The release asserts shift >= 1 (large latents); training here allows any positive shift
  // (small test latents), and sampling must use the training one.
  RAE_CHECK(std::isfinite(o.shift) && o.shift > 0,
            "sampler: the time shift must be finite and > 0, got ", o.shift,
            " (shift = sqrt(dim / shift-base))");
  if (o.kind != SamplerKind::Sde) {
    RAE_CHECK(std::isfinite(o.t_end) && o.t_end > 0 && o.t_end < 1,
              "sampler: t_end must be in "
              "(0, 1), got ",
              o.t_end);
    return;
  }
  RAE_CHECK(o.diffusion != DiffusionForm::Sbdm,
            "sampler: the SDE diffusion form SBDM is refused: in the release's time convention "
            "(t = 1 is noise) its w(t) = -t / (1 - t) is negative (-inf at t = 1), so the "
            "release's Euler-Maruyama step takes sqrt(2 w) = NaN; use sigma, linear, constant, "
            "decreasing or increasing-decreasing");
  RAE_CHECK(std::isfinite(o.diffusion_norm) && o.diffusion_norm >= 0,
            "sampler: --sde-norm must be finite and >= 0, got ", o.diffusion_norm);
  if (o.last_step != LastStep::None)
    RAE_CHECK(std::isfinite(o.last_step_size) && o.last_step_size > 0 && o.last_step_size < 1,
              "sampler: --sde-last-step-size must be in (0, 1), got ", o.last_step_size);
}

std::vector<double> time_grid(const SamplerOptions& o) {
  validate(o);
  // ODE: t1 = 1 - 1/1000 (check_interval); SDE: 1 - last_step_size, or 1 without a last step.
  double t1 = o.t_end;
  if (o.kind == SamplerKind::Sde) t1 = o.last_step == LastStep::None ? 1.0 : 1.0 - o.last_step_size;
  std::vector<float> lin = linspace_f32(0.0f, static_cast<float>(t1), o.num_steps);
  std::vector<double> g(o.num_steps);
  for (int i = 0; i < o.num_steps; ++i) g[i] = shift_f32(1.0f - lin[i], o.shift);
  return g;
}

int velocity_calls(const SamplerOptions& o) {
  const int steps = o.num_steps - 1;
  switch (o.kind) {
    case SamplerKind::Euler:
      return steps;
    case SamplerKind::Heun:
      return 2 * steps;
    case SamplerKind::Sde:
      return steps + (o.last_step == LastStep::None ? 0 : 1);
  }
  return steps;
}

void sample(const SamplerOptions& o, const Velocity& velocity, const Tensor& x, const Tensor& y,
            const StepNoise& noise) {
  const std::vector<double> grid = time_grid(o);
  RAE_CHECK(x.is_contiguous() && x.dtype() == DType::F32, "sampler: x must be contiguous f32, got ",
            x.str());
  Tensor v = Tensor::empty(x.shape(), DType::F32, x.device());
  const int n = static_cast<int>(grid.size());
  if (o.kind == SamplerKind::Euler) {
    for (int k = 0; k + 1 < n; ++k) {
      velocity(v, x, grid[k], y);
      ops::add_(x, v, static_cast<float>(grid[k + 1] - grid[k]));
    }
    return;
  }
  if (o.kind == SamplerKind::Heun) {
    Tensor v2 = Tensor::empty(x.shape(), DType::F32, x.device());
    Tensor xm = Tensor::empty(x.shape(), DType::F32, x.device());
    for (int k = 0; k + 1 < n; ++k) {
      const double dt = static_cast<float>(grid[k + 1] - grid[k]);
      velocity(v, x, grid[k], y);
      xm.copy_from(x);
      ops::add_(xm, v, dt);
      velocity(v2, xm, grid[k + 1], y);
      ops::add_(x, v, 0.5 * dt);
      ops::add_(x, v2, 0.5 * dt);
    }
    return;
  }
  RAE_CHECK(noise != nullptr, "sampler: the SDE needs a noise source");
  Tensor xi = Tensor::empty(x.shape(), DType::F32, x.device());
  for (int k = 0; k + 1 < n; ++k) {
    const double t = grid[k], h = static_cast<float>(grid[k] - grid[k + 1]);
    const double w = diffusion_at(o, t);
    noise(k, xi);
    velocity(v, x, t, y);
    sde_drift_step(x, v, t, w, h);
    ops::add_(x, xi, std::sqrt(2.0 * w) * std::sqrt(h));
  }
  if (o.last_step == LastStep::None) return;
  // The release evaluates the last step at t = 1 - t1 = last_step_size, unshifted.
  const double t = 1.0 - (1.0 - o.last_step_size), h = o.last_step_size;
  velocity(v, x, t, y);
  if (o.last_step == LastStep::Mean)
    sde_drift_step(x, v, t, diffusion_at(o, t), h);
  else
    ops::add_(x, v, -h);  // "Euler": the ODE drift only
}

bool Guidance::active_at(double t) const {
  if (method == Method::None) return false;
  // torch compares the float32 t tensor with the bounds cast to float32.
  const float tf = static_cast<float>(t);
  return tf >= static_cast<float>(t_min) && tf <= static_cast<float>(t_max);
}

void validate(const Guidance& g, bool have_guide_model) {
  RAE_CHECK(std::isfinite(g.scale), "guidance: --cfg-scale must be a finite number, got ", g.scale);
  RAE_CHECK(std::isfinite(g.t_min) && std::isfinite(g.t_max) && g.t_min < g.t_max,
            "guidance: the interval [t_min, t_max] = [", g.t_min, ", ", g.t_max,
            "] must be finite with t_min < t_max (t = 1 is noise)");
  if (g.method == Guidance::Method::AutoGuidance)
    RAE_CHECK(have_guide_model, "guidance: AutoGuidance needs a guide model (--guide-model)");
}

Velocity guided_velocity(Velocity model, Velocity guide, const Guidance& g) {
  validate(g, guide != nullptr);
  if (g.method == Guidance::Method::None) return model;
  if (g.method == Guidance::Method::AutoGuidance) {
    auto buf = std::make_shared<Tensor>();
    return [model, guide, g, buf](const Tensor& out, const Tensor& x, double t, const Tensor& y) {
      model(out, x, t, y);
      if (!g.active_at(t)) return;
      if (!buf->defined() || buf->shape() != x.shape() || buf->device() != x.device())
        *buf = Tensor::empty(x.shape(), DType::F32, x.device());
      guide(*buf, x, t, y);
      // out = g + s (m - g): m - g, times s, plus g (the release's order of operations).
      ops::add_(out, *buf, -1.0);
      ops::scale_(out, g.scale);
      ops::add_(out, *buf);
    };
  }
  struct Cfg {
    Tensor x2, v2, y2;
  };
  auto st = std::make_shared<Cfg>();
  return [model, g, st](const Tensor& out, const Tensor& x, double t, const Tensor& y) {
    if (!g.active_at(t)) return model(out, x, t, y);
    const int64_t B = x.dim(0);
    Shape s2 = x.shape();
    s2[0] = 2 * B;
    if (!st->x2.defined() || st->x2.shape() != s2 || st->x2.device() != x.device()) {
      st->x2 = Tensor::empty(s2, DType::F32, x.device());
      st->v2 = Tensor::empty(s2, DType::F32, x.device());
      st->y2 = Tensor::empty({2 * B}, DType::I32, x.device());
      st->y2.narrow(0, B, B).copy_from(Tensor::full({B}, g.null_label, DType::I32));
    }
    st->x2.narrow(0, 0, B).copy_from(x);
    st->x2.narrow(0, B, B).copy_from(x);
    st->y2.narrow(0, 0, B).copy_from(y);
    model(st->v2, st->x2, t, st->y2);
    Tensor cond = st->v2.narrow(0, 0, B), uncond = st->v2.narrow(0, B, B);
    // out = uncond + s (cond - uncond).
    Tensor(out).copy_from(cond);
    ops::add_(out, uncond, -1.0);
    ops::scale_(out, g.scale);
    ops::add_(out, uncond);
  };
}

}  // namespace rae::diffusion
