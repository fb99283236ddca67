// The op harness machinery: input generation, running a case on a device and dtype, losses.
#include "ops/op_harness.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/elementwise.h"
#include "support/util.h"

namespace rae::test::ops {

namespace {
Tensor to_cpu_f64(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor c = t.to(Device::cpu());
  return c.dtype() == DType::F64 ? c.clone() : c.cast(DType::F64);
}
}  // namespace

InputSpec in(const std::string& name, const Shape& shape) {
  return {name, shape, true, {}, {}};
}

InputSpec nograd(const std::string& name, const Shape& shape) {
  return {name, shape, false, {}, {}};
}

InputSpec uniform(const std::string& name, const Shape& shape, double lo, double hi, bool grad) {
  InputSpec s{name, shape, grad, {}, {}};
  s.make = [shape, lo, hi](uint64_t seed) { return rand_uniform(shape, seed, lo, hi, DType::F64); };
  return s;
}

InputSpec labels(const std::string& name, const std::vector<int32_t>& values) {
  InputSpec s{name, {static_cast<int64_t>(values.size())}, false, {}, DType::I32};
  s.make = [values](uint64_t) {
    Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::I32);
    std::copy(values.begin(), values.end(), t.data<int32_t>());
    return t;
  };
  return s;
}

Tensor OpCtx::stat(const Shape& s) const {
  return Tensor::empty(s, dtype == DType::F64 ? DType::F64 : DType::F32, device);
}

Tensor OpCtx::scalar(double v) {
  return Tensor::full({1}, v, DType::F64);
}

double OpCtx::dout_scalar(int k) const {
  return dout.at(k).to(Device::cpu()).item(0);
}

void OpCtx::accum(int i, const Tensor& g, double alpha) const {
  if (grad.at(i).defined()) rae::ops::add_(grad[i], g, alpha);
}

bool OpCase::has_grad() const {
  return std::any_of(inputs.begin(), inputs.end(), [](const InputSpec& s) { return s.grad; });
}

const OpCase& find_case(const std::string& name) {
  for (const OpCase& c : op_cases())
    if (c.name == name) return c;
  RAE_THROW("op harness: no case named '", name, "'");
}

std::vector<std::string> case_names(bool with_grad_only) {
  std::vector<std::string> names;
  for (const OpCase& c : op_cases())
    if (!with_grad_only || c.has_grad()) names.push_back(c.name);
  return names;
}

std::vector<std::string> overwrite_case_names() {
  std::vector<std::string> names;
  for (const OpCase& c : op_cases())
    if (!c.overwrite.empty()) names.push_back(c.name);
  return names;
}

std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed) {
  std::vector<Tensor> v;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const InputSpec& s = c.inputs[i];
    uint64_t sd = seed * 1000 + i;
    Tensor t = s.make ? s.make(sd) : randn(s.shape, sd, 1.0, DType::F64);
    RAE_CHECK(t.shape() == s.shape, "op harness: case ", c.name, " input ", s.name, " made ",
              t.shape().str(), ", spec says ", s.shape.str());
    if (s.fixed && t.dtype() != *s.fixed) t = t.cast(*s.fixed);
    v.push_back(t);
  }
  return v;
}

std::vector<Tensor> rounded(const OpCase& c, const std::vector<Tensor>& inputs, DType dtype) {
  std::vector<Tensor> v;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (c.inputs[i].fixed || dtype == DType::F64)
      v.push_back(inputs[i]);
    else
      v.push_back(inputs[i].cast(dtype).cast(DType::F64));
  }
  return v;
}

RunResult run_case(const OpCase& c, const std::vector<Tensor>& inputs, Device device, DType dtype,
                   const std::vector<Tensor>* douts, std::vector<bool> grad_mask, int repeats,
                   rae::ops::GradMode mode) {
  RAE_CHECK(mode == rae::ops::GradMode::Accumulate || (repeats == 1 && !c.overwrite.empty()),
            "op harness: case ", c.name, " run in overwrite mode without an overwrite list");
  OpCtx ctx;
  ctx.device = device;
  ctx.dtype = dtype;
  ctx.mode = mode;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    Tensor d = (c.inputs[i].fixed || t.dtype() == dtype) ? t.clone() : t.cast(dtype);
    ctx.in.push_back(d.to(device));
  }
  if (grad_mask.empty()) grad_mask.assign(inputs.size(), true);
  if (douts) {
    for (const Tensor& d : *douts) ctx.dout.push_back(d.cast(dtype).to(device));
    for (size_t i = 0; i < inputs.size(); ++i) {
      const bool poison = mode == rae::ops::GradMode::Overwrite &&
                          std::find(c.overwrite.begin(), c.overwrite.end(), static_cast<int>(i)) !=
                              c.overwrite.end();
      ctx.grad.push_back(c.inputs[i].grad && grad_mask[i]
                             ? Tensor::full(inputs[i].shape(), poison ? NAN : 0.0, dtype, device)
                             : Tensor());
    }
  } else {
    ctx.grad.assign(inputs.size(), Tensor());
  }
  OpOutputs o;
  for (int r = 0; r < repeats; ++r) o = c.run(ctx);
  RunResult res;
  for (const Tensor& t : o.out) res.out.push_back(to_cpu_f64(t));
  for (const Tensor& t : o.aux) res.aux.push_back(to_cpu_f64(t));
  for (const Tensor& g : ctx.grad) res.grad.push_back(to_cpu_f64(g));
  return res;
}

std::vector<Tensor> loss_weights(const RunResult& forward, uint64_t seed) {
  std::vector<Tensor> w;
  for (size_t k = 0; k < forward.out.size(); ++k)
    w.push_back(randn(forward.out[k].shape(), seed * 100 + k, 1.0, DType::F64));
  return w;
}

double loss(const RunResult& r, const std::vector<Tensor>& weights) {
  double s = 0;
  for (size_t k = 0; k < r.out.size(); ++k) {
    const double* o = r.out[k].data<double>();
    const double* w = weights[k].data<double>();
    for (int64_t i = 0; i < r.out[k].numel(); ++i) s += o[i] * w[i];
  }
  return s;
}

double normalized_error(const Tensor& a, const Tensor& b, double floor) {
  RAE_CHECK(a.shape() == b.shape(), "normalized_error: shapes ", a.shape().str(), " vs ",
            b.shape().str());
  Tensor x = to_cpu_f64(a), y = to_cpu_f64(b);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double u = x.data<double>()[i], v = y.data<double>()[i];
    if (std::isnan(u) != std::isnan(v)) return INFINITY;
    if (std::isnan(u)) continue;
    err = std::max(err, std::fabs(u - v));
    ref = std::max(ref, std::fabs(v));
  }
  return err / std::max(ref, floor);
}

}  // namespace rae::test::ops
