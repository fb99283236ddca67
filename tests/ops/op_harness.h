// The op test harness, in the spirit of ggml's test-backend-ops: a table of op cases, each a
// small function that runs an op's forward (and, given output gradients, its backward) on any
// device and dtype. The tests built on it:
//   test_ops_fd.cpp        F64 central finite differences vs the analytic backward; F32 vs F64;
//                          backward accumulation (twice = 2x) and undefined-gradient skipping.
//   test_ops_reference.cpp the F64 forward against each case's naive reference, where given.
//   test_ops_backends.cpp  every case on every backend present (CPU always, CUDA when a GPU
//                          answers) against the CPU F64 result.
// To add an op: append an OpCase to the table in op_cases.cpp (see the existing ones) and, in
// op_references.cpp, a naive reference for its forward.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ops/grad_mode.h"
#include "tensor/tensor.h"

namespace rae::test::ops {

// One input of a case. Inputs are generated on the CPU in F64 (or `fixed`), then cast to the
// run's dtype and moved to its device, except `fixed` ones, which keep their dtype.
struct InputSpec {
  std::string name;
  Shape shape;
  bool grad = true;                           // differentiable: gets a gradient buffer
  std::function<Tensor(uint64_t seed)> make;  // custom CPU tensor; default normal(0, 1) F64
  std::optional<DType> fixed;                 // keeps this dtype (labels I32, t F32, tables)
};

InputSpec in(const std::string& name, const Shape& shape);      // normal, differentiable
InputSpec nograd(const std::string& name, const Shape& shape);  // normal, no gradient
InputSpec uniform(const std::string& name, const Shape& shape, double lo, double hi,
                  bool grad = true);
InputSpec labels(const std::string& name, const std::vector<int32_t>& values);  // I32, fixed

// What a case function sees: its inputs on the run's device and dtype, and for a backward run
// the output gradients (one per output) and a zero-initialised gradient buffer per
// differentiable input (undefined where the test asks to skip it). Backward ops accumulate into
// those buffers, so the harness can call a case twice to check accumulation.
struct OpCtx {
  Device device;
  DType dtype = DType::F32;
  // The mode to pass to the backward op (ops/grad_mode.h). Under Overwrite the gradient buffers
  // of the case's `overwrite` inputs hold NaN on entry: the op must write every element.
  rae::ops::GradMode mode = rae::ops::GradMode::Accumulate;
  std::vector<Tensor> in;
  std::vector<Tensor> dout;
  std::vector<Tensor> grad;

  bool backward() const { return !dout.empty(); }
  Tensor empty(const Shape& s) const { return Tensor::empty(s, dtype, device); }
  Tensor zeros(const Shape& s) const { return Tensor::zeros(s, dtype, device); }
  // Saved statistics (mean, rstd, lse): F32, or F64 in F64 runs.
  Tensor stat(const Shape& s) const;
  // A host scalar output (losses, norms) as a 1-element F64 CPU tensor.
  static Tensor scalar(double v);
  // The value of a scalar output's gradient.
  double dout_scalar(int k) const;
  // grad[i] += alpha * g, skipped when grad[i] is undefined.
  void accum(int i, const Tensor& g, double alpha = 1.0) const;
};

// Outputs enter the finite-difference loss; aux outputs (saved statistics) are only compared.
struct OpOutputs {
  std::vector<Tensor> out;
  std::vector<Tensor> aux;
};

struct OpCase {
  std::string name;  // a valid gtest name: letters, digits, underscores
  std::vector<InputSpec> inputs;
  std::function<OpOutputs(OpCtx&)> run;
  // Optional naive F64 forward: expected outputs (not aux) from the CPU inputs of make_inputs.
  std::function<std::vector<Tensor>(const std::vector<Tensor>& in)> reference = nullptr;
  // Inputs whose gradient buffers the backward op writes whole under GradMode::Overwrite (the
  // case passes ctx.mode to the op); empty: the case has no overwrite mode.
  std::vector<int> overwrite = {};
  bool bf16 = true;        // also run on CUDA in bf16
  double f32_tol = 1e-4;   // F32 vs F64, normalised max error
  double bf16_tol = 2e-2;  // bf16 vs F64
  bool has_grad() const;
};

// The table.
const std::vector<OpCase>& op_cases();
void attach_references(std::vector<OpCase>& cases);  // op_references.cpp
const OpCase& find_case(const std::string& name);
std::vector<std::string> case_names(bool with_grad_only = false);
std::vector<std::string> overwrite_case_names();  // the cases with an overwrite mode

// Results copied to the CPU in F64.
struct RunResult {
  std::vector<Tensor> out, aux, grad;  // grad[i] undefined where no gradient was asked
};

// Inputs of a case on the CPU (F64, or their fixed dtype), deterministic in `seed`.
std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed = 1);
// The same values as they look after a round trip through `dtype` (fixed inputs unchanged).
std::vector<Tensor> rounded(const OpCase& c, const std::vector<Tensor>& inputs, DType dtype);
// Runs a case. With `douts` (CPU, one per output) it also runs the backward; `grad_mask`
// (one bool per input, default all) selects which gradients are requested; `repeats` calls the
// case that many times with the same gradient buffers. `mode` Overwrite fills the gradient
// buffers of c.overwrite with NaN instead of zeros and runs the case with ctx.mode = Overwrite.
RunResult run_case(const OpCase& c, const std::vector<Tensor>& inputs, Device device, DType dtype,
                   const std::vector<Tensor>* douts = nullptr, std::vector<bool> grad_mask = {},
                   int repeats = 1, rae::ops::GradMode mode = rae::ops::GradMode::Accumulate);
// Fixed random weights shaped like the outputs (the loss is sum(out * w)).
std::vector<Tensor> loss_weights(const RunResult& forward, uint64_t seed = 7);
double loss(const RunResult& r, const std::vector<Tensor>& weights);

// max |a - b| / max(max |b|, floor): a scale-aware error for whole tensors.
double normalized_error(const Tensor& a, const Tensor& b, double floor = 1e-3);

}  // namespace rae::test::ops
