// The vision ops' part of the harness table (convolution, batch norm, pooling, rectifiers,
// resize): cases in op_cases_vision.cpp, naive F64 references in op_references_vision.cpp.
#pragma once
#include <vector>

#include "ops/op_harness.h"
#include "ops/pool.h"

namespace rae::test::ops {

// avg_pool2d_rect_exclude_pad's parameters: kernel (2, 3), stride (2, 1), padding (1, 1), the
// TF rule (padding not counted).
inline rae::ops::Pool2dParams rect_pool_params() {
  rae::ops::Pool2dParams p;
  p.kernel_h = 2;
  p.kernel_w = 3;
  p.stride_h = 2;
  p.stride_w = 1;
  p.pad_h = 1;
  p.pad_w = 1;
  p.count_include_pad = false;
  return p;
}

// Appends the vision cases, each with its reference attached.
void add_vision_cases(std::vector<OpCase>& v);
// The naive reference of a vision case by name (nullptr when it has none).
std::function<std::vector<Tensor>(const std::vector<Tensor>&)> vision_reference(
    const std::string& name);

}  // namespace rae::test::ops
