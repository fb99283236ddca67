// Dispatch and argument checks for softmax, fused attention and 2D rotary embeddings
// (rope2d_tables is a host function: the tables are built once on the CPU).
#include "ops/attention.h"

#include <cmath>

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

void softmax_forward(const Tensor& out, const Tensor& x) {
  const char* op = "softmax_forward";
  check::is_float(x, op, "x");
  check::rows(x, op, "x");
  check::like(out, x, op, "out");
  check::shape(out, x.shape(), op, "out");
  check::rows(out, op, "out");
  RAE_DISPATCH(x, softmax_forward, out, x);
}

void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& out) {
  const char* op = "softmax_backward";
  check::is_float(out, op, "out");
  check::rows(out, op, "out");
  check::like(dout, out, op, "dout");
  check::shape(dout, out.shape(), op, "dout");
  check::rows(dout, op, "dout");
  if (!dx.defined()) return;
  check::like(dx, out, op, "dx");
  check::shape(dx, out.shape(), op, "dx");
  check::rows(dx, op, "dx");
  RAE_DISPATCH(out, softmax_backward, dx, dout, out);
}

namespace {
// qkv (B, T, 3, H, D) contiguous; returns the expected out shape (B, T, H, D).
Shape check_qkv(const char* op, const Tensor& qkv, const char* name) {
  check::is_float(qkv, op, name);
  check::ndim(qkv, 5, op, name);
  RAE_CHECK(qkv.dim(2) == 3, op, ": argument '", name, "' must be (B, T, 3, H, D), got ",
            qkv.shape().str());
  check::contiguous(qkv, op, name);
  return {qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4)};
}
// FLOPs of one T x T x D product per (sample, head), 2 * B * H * T^2 * D: the forward does two
// (QK^T, PV), the backward four (dV, dP, dQ, dK; a recomputation of QK^T is not counted), the
// same 1 : 2 split the step's analytic FLOPs use.
double attention_matmul_flops(const Tensor& qkv) {
  const double B = static_cast<double>(qkv.dim(0)), T = static_cast<double>(qkv.dim(1));
  return 2.0 * B * static_cast<double>(qkv.dim(3)) * T * T * static_cast<double>(qkv.dim(4));
}
void check_out(const char* op, const Tensor& t, const char* name, const Tensor& qkv,
               const Shape& expect) {
  check::like(t, qkv, op, name);
  check::shape(t, expect, op, name);
  check::contiguous(t, op, name);
}
}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, double scale) {
  const char* op = "attention_forward";
  Shape os = check_qkv(op, qkv, "qkv");
  check_out(op, out, "out", qkv, os);
  check::stat(lse, qkv, qkv.dim(0) * qkv.dim(3) * qkv.dim(1), op, "lse");
  RAE_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  RAE_DISPATCH_FLOPS(2.0 * attention_matmul_flops(qkv), qkv, attention_forward, out, lse, qkv,
                     scale);
}

void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                        const Tensor& out, const Tensor& lse, double scale, GradMode mode) {
  const char* op = "attention_backward";
  Shape os = check_qkv(op, qkv, "qkv");
  check_out(op, out, "out", qkv, os);
  check_out(op, dout, "dout", qkv, os);
  check::stat(lse, qkv, qkv.dim(0) * qkv.dim(3) * qkv.dim(1), op, "lse");
  if (!dqkv.defined()) return;
  check_out(op, dqkv, "dqkv", qkv, qkv.shape());
  RAE_DISPATCH_FLOPS(4.0 * attention_matmul_flops(qkv), qkv, attention_backward, dqkv, dout, qkv,
                     out, lse, scale, mode);
}

void rope2d_tables(const Tensor& cos, const Tensor& sin, int64_t grid_h, int64_t grid_w,
                   int64_t head_dim, double theta) {
  const char* op = "rope2d_tables";
  RAE_CHECK(grid_h > 0 && grid_w > 0, op, ": grid must be positive, got ", grid_h, "x", grid_w);
  RAE_CHECK(head_dim > 0 && head_dim % 4 == 0, op,
            ": head_dim must be a positive multiple of 4, got ", head_dim);
  RAE_CHECK(theta > 0, op, ": theta must be positive, got ", theta);
  for (auto [t, name] : {std::pair<const Tensor&, const char*>{cos, "cos"}, {sin, "sin"}}) {
    check::shape(t, {grid_h * grid_w, head_dim}, op, name);
    RAE_CHECK(t.device().is_cpu(), op, ": argument '", name,
              "' must be a CPU tensor (build on the CPU, then copy)");
    RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, op, ": argument '", name,
              "' must be f32 or f64, got ", dtype_name(t.dtype()));
    check::contiguous(t, op, name);
  }
  cpu::rope2d_tables(cos, sin, grid_h, grid_w, head_dim, theta);
}

namespace {
void check_rope(const char* op, const Tensor& qkv, const char* name, const Tensor& cos,
                const Tensor& sin) {
  check_qkv(op, qkv, name);
  RAE_CHECK(qkv.dim(4) % 2 == 0, op, ": head dim ", qkv.dim(4), " must be even");
  for (auto [t, tn] : {std::pair<const Tensor&, const char*>{cos, "cos"}, {sin, "sin"}}) {
    check::same_device(t, qkv, op, tn);
    check::shape(t, {qkv.dim(1), qkv.dim(4)}, op, tn);
    check::contiguous(t, op, tn);
    RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == qkv.dtype(), op, ": argument '", tn,
              "' must be f32 or ", dtype_name(qkv.dtype()), ", got ", dtype_name(t.dtype()));
  }
  RAE_CHECK(cos.dtype() == sin.dtype(), op, ": 'cos' and 'sin' dtypes differ");
}
}  // namespace

void rope_apply(const Tensor& qkv, const Tensor& cos, const Tensor& sin) {
  check_rope("rope_apply", qkv, "qkv", cos, sin);
  RAE_DISPATCH(qkv, rope_apply, qkv, cos, sin);
}

void rope_apply_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin) {
  check_rope("rope_apply_backward", dqkv, "dqkv", cos, sin);
  RAE_DISPATCH(dqkv, rope_apply_backward, dqkv, cos, sin);
}

}  // namespace rae::ops
