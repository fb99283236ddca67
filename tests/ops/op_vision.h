// The vision ops' part of the harness table (convolution, batch norm, pooling, rectifiers,
// resize): cases in op_cases_vision.cpp, naive F64 references in op_references_vision.cpp.
#pragma once
#include <vector>

#include "ops/op_harness.h"

namespace rae::test::ops {

// Appends the vision cases, each with its reference attached.
void add_vision_cases(std::vector<OpCase>& v);
// The naive reference of a vision case by name (nullptr when it has none).
std::function<std::vector<Tensor>(const std::vector<Tensor>&)> vision_reference(
    const std::string& name);

}  // namespace rae::test::ops
