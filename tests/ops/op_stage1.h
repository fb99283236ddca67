// The stage-1 ops' part of the harness table (losses, pixel ops, DiffAug, spectral norm,
// circular padding, grouped batch norm, noise augmentation): cases in op_cases_stage1.cpp,
// naive F64 references in op_references_stage1.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ops/op_harness.h"

namespace rae::test::ops {

// Appends the stage-1 cases, each with its reference attached.
void add_stage1_cases(std::vector<OpCase>& v);
// The naive reference of a stage-1 case by name (nullptr when it has none).
std::function<std::vector<Tensor>(const std::vector<Tensor>&)> stage1_reference(
    const std::string& name);

// Fixed per-sample DiffAug parameters of the cases (B = 2): shifts (dy, dx), colour factors
// (a, s, k) and cutout boxes (y0, y1, x0, x1), shared with the references.
inline const std::vector<int32_t>& case_shifts() {
  static const std::vector<int32_t> v = {1, -2, -3, 0};
  return v;
}
inline const std::vector<float>& case_factors() {
  static const std::vector<float> v = {0.3f, 1.7f, 0.6f, -0.2f, 0.4f, 1.3f};
  return v;
}
inline const std::vector<int32_t>& case_boxes() {
  static const std::vector<int32_t> v = {1, 3, 0, 2, 0, 0, 0, 0};
  return v;
}

}  // namespace rae::test::ops
