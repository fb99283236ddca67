// Dispatch and argument checks for GEMM and the linear layer.
#include "ops/linear.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

void matmul(const Tensor& C, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b,
            double alpha, double beta) {
  const char* op = "matmul";
  check::is_float(C, op, "C");
  check::like(A, C, op, "A");
  check::like(B, C, op, "B");
  RAE_CHECK(A.ndim() == 2 || A.ndim() == 3, op, ": argument 'A' must be 2-D or 3-D, got ",
            A.shape().str());
  check::ndim(B, A.ndim(), op, "B");
  check::ndim(C, A.ndim(), op, "C");
  const int o = A.ndim() - 2;  // first matrix dim
  if (o == 1) {
    RAE_CHECK(B.dim(0) == A.dim(0) && C.dim(0) == A.dim(0), op, ": batch dims differ: A ",
              A.shape().str(), ", B ", B.shape().str(), ", C ", C.shape().str());
    check::contiguous(A, op, "A");
    check::contiguous(B, op, "B");
    check::contiguous(C, op, "C");
  } else {
    check::rows(A, op, "A");
    check::rows(B, op, "B");
    check::rows(C, op, "C");
  }
  int64_t M = trans_a ? A.dim(o + 1) : A.dim(o), K = trans_a ? A.dim(o) : A.dim(o + 1);
  int64_t Kb = trans_b ? B.dim(o + 1) : B.dim(o), N = trans_b ? B.dim(o) : B.dim(o + 1);
  RAE_CHECK(K == Kb, op, ": inner dims differ: op(A) is (", M, ", ", K, "), op(B) is (", Kb, ", ",
            N, ") (A ", A.shape().str(), " trans ", trans_a, ", B ", B.shape().str(), " trans ",
            trans_b, ")");
  RAE_CHECK(C.dim(o) == M && C.dim(o + 1) == N, op, ": argument 'C' has shape ", C.shape().str(),
            ", expected (..., ", M, ", ", N, ")");
  const double batch = o == 1 ? static_cast<double>(A.dim(0)) : 1.0;
  RAE_DISPATCH_FLOPS(2.0 * batch * M * N * K, C, matmul, C, A, B, trans_a, trans_b, alpha, beta);
}

namespace {
// 2 * rows * I * O: one GEMM of x (rows, I) with w (O, I) (the profile's TFLOP/s).
double gemm_flops(const Tensor& x, const Tensor& w) {
  return 2.0 * static_cast<double>(check::nrows(x)) * static_cast<double>(w.dim(0)) *
         static_cast<double>(w.dim(1));
}

// x (..., I), w (O, I), out (..., O) with the same leading dims as x.
void check_linear_shapes(const char* op, const Tensor& x, const Tensor& w, const char* out_name,
                         const Tensor& out) {
  check::ndim(w, 2, op, "w");
  check::contiguous(w, op, "w");
  check::rows(x, op, "x");
  RAE_CHECK(check::cols(x) == w.dim(1), op, ": argument 'x' ", x.shape().str(), " has last dim ",
            check::cols(x), " but 'w' ", w.shape().str(), " expects ", w.dim(1));
  check::defined(out, op, out_name);
  check::rows(out, op, out_name);
  RAE_CHECK(check::cols(out) == w.dim(0) && check::nrows(out) == check::nrows(x), op,
            ": argument '", out_name, "' has shape ", out.shape().str(), ", expected ",
            check::nrows(x), " rows of ", w.dim(0));
}
}  // namespace

void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  const char* op = "linear_forward";
  check::is_float(x, op, "x");
  check::like(w, x, op, "w");
  check::like(out, x, op, "out");
  check_linear_shapes(op, x, w, "out", out);
  if (b.defined()) {
    check::like(b, x, op, "b");
    check::shape(b, {w.dim(0)}, op, "b");
    check::contiguous(b, op, "b");
  }
  RAE_DISPATCH_FLOPS(gemm_flops(x, w), x, linear_forward, out, x, w, b);
}

void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, GradMode mode) {
  const char* op = "linear_backward";
  check::is_float(x, op, "x");
  check::like(w, x, op, "w");
  check::like(dout, x, op, "dout");
  check_linear_shapes(op, x, w, "dout", dout);
  if (dx.defined()) {
    check::like(dx, x, op, "dx");
    check::rows(dx, op, "dx");
    RAE_CHECK(dx.shape() == x.shape(), op, ": argument 'dx' has shape ", dx.shape().str(),
              ", expected ", x.shape().str());
  }
  if (dw.defined()) {
    check::like(dw, x, op, "dw");
    check::shape(dw, w.shape(), op, "dw");
    check::contiguous(dw, op, "dw");
  }
  if (db.defined()) {
    check::like(db, x, op, "db");
    check::shape(db, {w.dim(0)}, op, "db");
    check::contiguous(db, op, "db");
  }
  const double gemms = (dx.defined() ? 1.0 : 0.0) + (dw.defined() ? 1.0 : 0.0);
  RAE_DISPATCH_FLOPS(gemms * gemm_flops(x, w), x, linear_backward, dx, dw, db, dout, x, w,
                     mode);
}

}  // namespace rae::ops
