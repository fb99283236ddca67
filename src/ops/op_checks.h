// Argument checks shared by the op dispatch files (src/ops/<family>.cpp). Every message names the
// op and the argument, so a bad call reads like "linear_forward: argument 'w' has shape (4, 3),
// expected (8, 3)".
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "tensor/tensor.h"

namespace rae::ops::check {

// A tensor is "row-strided" when its last dim is contiguous and its leading dims collapse into
// one row stride: a contiguous tensor, or a chunk (narrow of the last dim) of a wider one, as
// adaLN's shift/scale/gate chunks are. Returns false for other layouts.
inline bool row_strided(const Tensor& t, int64_t* row_stride = nullptr) {
  // raw pointers: Shape::operator[]'s negative-index branch trips GCC's -Warray-bounds here
  const int nd = t.ndim();
  const int64_t* dims = t.shape().begin();
  const int64_t* st = t.strides().begin();
  const int64_t cols = nd == 0 ? 1 : dims[nd - 1];
  if (row_stride) *row_stride = cols;
  if (nd == 0) return true;
  if (cols != 1 && st[nd - 1] != 1) return false;
  // Leading dims of extent > 1, inner to outer, must nest: stride[outer] = stride[inner] * dim.
  int64_t inner_stride = -1, inner_extent = 0;
  for (int i = nd - 2; i >= 0; --i) {
    if (dims[i] == 1) continue;
    if (inner_stride < 0) {
      if (row_stride) *row_stride = st[i];
      if (st[i] < cols) return false;
    } else if (st[i] != inner_stride * inner_extent) {
      return false;
    }
    inner_stride = st[i];
    inner_extent = dims[i];
  }
  return true;
}

inline void defined(const Tensor& t, const char* op, const char* arg) {
  RAE_CHECK(t.defined(), op, ": argument '", arg, "' is undefined");
}

inline void is_float(const Tensor& t, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64 || t.dtype() == DType::BF16 ||
                t.dtype() == DType::F16,
            op, ": argument '", arg, "' must be a float tensor, got ", t.str());
}

// Whether `t` may have a dtype other than `ref`'s: the CUDA kernels read and write F32 and BF16
// per argument (mixed precision: BF16 activations with F32 weights and F32 gradients; GEMMs
// cast mismatched operands to BF16 and accumulate in F32). CPU ops stay strict.
inline bool mixed_dtype_ok(const Tensor& t, const Tensor& ref) {
  auto f32_or_bf16 = [](DType d) { return d == DType::F32 || d == DType::BF16; };
  return ref.is_cuda() && f32_or_bf16(t.dtype()) && f32_or_bf16(ref.dtype());
}

// `t` is defined, on `ref`'s device, with `ref`'s dtype (or, on CUDA, F32/BF16 mixed).
inline void like(const Tensor& t, const Tensor& ref, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(t.device() == ref.device(), op, ": argument '", arg, "' is on ", t.device().str(),
            " but the op runs on ", ref.device().str());
  RAE_CHECK(t.dtype() == ref.dtype() || mixed_dtype_ok(t, ref), op, ": argument '", arg,
            "' has dtype ", dtype_name(t.dtype()), ", expected ", dtype_name(ref.dtype()),
            ref.is_cuda() ? " (CUDA ops mix only f32 and bf16)" : "");
}

inline void same_device(const Tensor& t, const Tensor& ref, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(t.device() == ref.device(), op, ": argument '", arg, "' is on ", t.device().str(),
            " but the op runs on ", ref.device().str());
}

inline void dtype(const Tensor& t, DType dt, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(t.dtype() == dt, op, ": argument '", arg, "' has dtype ", dtype_name(t.dtype()),
            ", expected ", dtype_name(dt));
}

inline void shape(const Tensor& t, const Shape& expect, const char* op, const char* arg) {
  check_shape(t, expect, op, arg);
}

inline void ndim(const Tensor& t, int nd, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(t.ndim() == nd, op, ": argument '", arg, "' must have ", nd, " dims, got ",
            t.shape().str());
}

inline void contiguous(const Tensor& t, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(t.is_contiguous(), op, ": argument '", arg, "' ", t.str(),
            " must be contiguous (clone() it first)");
}

inline void rows(const Tensor& t, const char* op, const char* arg) {
  defined(t, op, arg);
  RAE_CHECK(row_strided(t), op, ": argument '", arg, "' ", t.str(),
            " must have a contiguous last dim and uniformly strided rows (clone() it first)");
}

// Statistics saved by norms and attention: F32, or F64 for F64 inputs.
inline DType stat_dtype(DType x) {
  return x == DType::F64 ? DType::F64 : DType::F32;
}

// A saved statistic with n elements (any shape, e.g. (N) or (B, T)), contiguous.
inline void stat(const Tensor& t, const Tensor& x, int64_t n, const char* op, const char* arg) {
  defined(t, op, arg);
  same_device(t, x, op, arg);
  dtype(t, stat_dtype(x.dtype()), op, arg);
  RAE_CHECK(t.numel() == n, op, ": argument '", arg, "' has shape ", t.shape().str(), " (",
            t.numel(), " elements), expected ", n, " elements");
  contiguous(t, op, arg);
}

// adaLN conditioning for x (B, T, C): per sample (B, C) or per token (B, T, C), row-strided.
inline void cond(const Tensor& t, const Tensor& x, const char* op, const char* arg) {
  like(t, x, op, arg);
  RAE_CHECK((t.ndim() == 2 && t.dim(0) == x.dim(0) && t.dim(1) == x.dim(2)) ||
                (t.ndim() == 3 && t.shape() == x.shape()),
            op, ": argument '", arg, "' has shape ", t.shape().str(), ", expected (", x.dim(0),
            ", ", x.dim(2), ") per sample or ", x.shape().str(), " per token");
  rows(t, op, arg);
}

// AdamW's buffers: a contiguous float `param` and grad, m, v like it (adamw_step and
// adamw_step_scalars).
inline void adamw_buffers(const char* op, const Tensor& param, const Tensor& grad, const Tensor& m,
                          const Tensor& v) {
  is_float(param, op, "param");
  contiguous(param, op, "param");
  for (auto [t, name] : {std::pair<const Tensor&, const char*>{grad, "grad"}, {m, "m"}, {v, "v"}}) {
    like(t, param, op, name);
    shape(t, param.shape(), op, name);
    contiguous(t, op, name);
  }
}

// Rows (product of leading dims) and columns (last dim) of a tensor seen as (N, C).
inline int64_t cols(const Tensor& t) {
  return t.ndim() == 0 ? 1 : t.shape().begin()[t.ndim() - 1];
}
inline int64_t nrows(const Tensor& t) {
  return t.ndim() == 0 ? 1 : t.numel() / std::max<int64_t>(cols(t), 1);
}

}  // namespace rae::ops::check
