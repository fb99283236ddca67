#include "eval/pairwise.h"

#include <tbb/parallel_for.h>

#include <atomic>
#include <limits>

#include "core/error.h"

namespace rae::eval::pairwise {

namespace {

void check_block(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                 const char* op) {
  RAE_CHECK(dots.ndim() == 2 && dots.dtype() == DType::F32 && dots.is_contiguous(), op,
            ": dots must be contiguous F32 (rows, cols), got ", dots.str());
  check_shape(row_norms, {dots.dim(0)}, op, "row_norms");
  check_shape(col_norms, {dots.dim(1)}, op, "col_norms");
  RAE_CHECK(row_norms.dtype() == DType::F32 && col_norms.dtype() == DType::F32, op,
            ": norms must be F32");
  check_same_device(dots, row_norms, op);
  check_same_device(dots, col_norms, op);
}

}  // namespace

void update_smallest(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                     const Tensor& state) {
  const char* op = "pairwise::update_smallest";
  check_block(dots, row_norms, col_norms, op);
  RAE_CHECK(state.ndim() == 2 && state.dim(0) == dots.dim(0) && state.dim(1) >= 1 &&
                state.dim(1) <= kMaxSmallest && state.dtype() == DType::F32 &&
                state.is_contiguous(),
            op, ": state must be contiguous F32 (", dots.dim(0), ", 1..", kMaxSmallest, "), got ",
            state.str());
  check_same_device(dots, state, op);
  if (dots.is_cuda())
    cuda::update_smallest(dots, row_norms, col_norms, state);
  else
    cpu::update_smallest(dots, row_norms, col_norms, state);
}

void update_within(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                   const Tensor& row_radii, const Tensor& col_radii, const Tensor& row_flags,
                   const Tensor& col_flags) {
  const char* op = "pairwise::update_within";
  check_block(dots, row_norms, col_norms, op);
  check_shape(row_radii, {dots.dim(0)}, op, "row_radii");
  check_shape(col_radii, {dots.dim(1)}, op, "col_radii");
  check_shape(row_flags, {dots.dim(0)}, op, "row_flags");
  check_shape(col_flags, {dots.dim(1)}, op, "col_flags");
  RAE_CHECK(row_radii.dtype() == DType::F32 && col_radii.dtype() == DType::F32 &&
                row_flags.dtype() == DType::I32 && col_flags.dtype() == DType::I32,
            op, ": radii must be F32 and flags I32");
  for (const Tensor* t : {&row_radii, &col_radii, &row_flags, &col_flags})
    check_same_device(dots, *t, op);
  if (dots.is_cuda())
    cuda::update_within(dots, row_norms, col_norms, row_radii, col_radii, row_flags, col_flags);
  else
    cpu::update_within(dots, row_norms, col_norms, row_radii, col_radii, row_flags, col_flags);
}

namespace cpu {

void update_smallest(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                     const Tensor& state) {
  const int64_t rows = dots.dim(0), cols = dots.dim(1), k1 = state.dim(1);
  const float* g = dots.data<float>();
  const float* nu = row_norms.data<float>();
  const float* nv = col_norms.data<float>();
  float* st = state.data<float>();
  tbb::parallel_for(int64_t{0}, rows, [&](int64_t i) {
    float* s = st + i * k1;  // ascending
    const float* gi = g + i * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const float d = std::max((nu[i] - 2.0f * gi[j]) + nv[j], 0.0f);
      if (!(d < s[k1 - 1])) continue;
      int64_t p = k1 - 1;
      while (p > 0 && s[p - 1] > d) {
        s[p] = s[p - 1];
        --p;
      }
      s[p] = d;
    }
  });
}

void update_within(const Tensor& dots, const Tensor& row_norms, const Tensor& col_norms,
                   const Tensor& row_radii, const Tensor& col_radii, const Tensor& row_flags,
                   const Tensor& col_flags) {
  const int64_t rows = dots.dim(0), cols = dots.dim(1);
  const float* g = dots.data<float>();
  const float* nu = row_norms.data<float>();
  const float* nv = col_norms.data<float>();
  const float* ru = row_radii.data<float>();
  const float* rv = col_radii.data<float>();
  int32_t* fu = row_flags.data<int32_t>();
  int32_t* fv = col_flags.data<int32_t>();
  tbb::parallel_for(int64_t{0}, rows, [&](int64_t i) {
    const float* gi = g + i * cols;
    bool in = fu[i] != 0;
    for (int64_t j = 0; j < cols; ++j) {
      const float d = std::max((nu[i] - 2.0f * gi[j]) + nv[j], 0.0f);
      in = in || d <= rv[j];
      // Several rows may mark the same column; they all store 1.
      if (d <= ru[i]) std::atomic_ref<int32_t>(fv[j]).store(1, std::memory_order_relaxed);
    }
    fu[i] = in ? 1 : 0;
  });
}

}  // namespace cpu

#ifndef RAE_WITH_CUDA
namespace cuda {
void update_smallest(const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  RAE_THROW("pairwise::update_smallest: this build has no CUDA");
}
void update_within(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                   const Tensor&, const Tensor&) {
  RAE_THROW("pairwise::update_within: this build has no CUDA");
}
}  // namespace cuda
#endif

}  // namespace rae::eval::pairwise
