// CUDA elementwise helpers, device reductions (sum of squares, finiteness, MSE) and the
// flow-matching interpolation. Reductions sum per block in double and finish on the host over a
// fixed number of block partials, so results are deterministic.
#include <vector>

#include "ops/cuda/common.cuh"
#include "ops/cuda/fast_paths.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/elementwise.h"
#include "ops/step_scalars.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

__global__ void axpy_kernel(Ptr y, Ptr x, float alpha, int64_t n) {
  RAE_GRID_LOOP(i, n) y.st(i, y.ld(i) + alpha * x.ld(i));
}
__global__ void scale_kernel(Ptr x, float alpha, int64_t n) {
  RAE_GRID_LOOP(i, n) x.st(i, x.ld(i) * alpha);
}
__global__ void add_kernel(Ptr out, Ptr a, Ptr b, int64_t n) {
  RAE_GRID_LOOP(i, n) out.st(i, a.ld(i) + b.ld(i));
}
// out[i] = x[i] + row[i % R] for rows i of C (R = 1: one broadcast row).
__global__ void add_rowwise_kernel(Ptr out, Ptr x, Ptr row, int64_t N, int64_t C, int64_t R) {
  RAE_ROW_LOOP(r, c, N, C) out.st2(r, c, C, x.ld2(r, c, C) + row.ld2(r % R, c, C));
}

// sum x^2, or sum (x - y)^2 when y is given.
struct SumSq {
  Ptr x, y;
  __device__ double operator()(int64_t i) const {
    double d = x.ld(i);
    if (y.valid()) d -= y.ld(i);
    return d * d;
  }
};

__global__ void nonfinite_kernel(Ptr x, int64_t n, int* flag) {
  RAE_GRID_LOOP(i, n) {
    if (!isfinite(x.ld(i))) {
      *flag = 1;
      return;
    }
  }
}

__global__ void mse_bwd_kernel(Ptr dpred, Ptr pred, Ptr target, float k, int64_t n) {
  RAE_GRID_LOOP(i, n) dpred.add(i, k * (pred.ld(i) - target.ld(i)));
}

__global__ void flow_kernel(Ptr xt, Ptr target, Ptr x, Ptr eps, Ptr t, int64_t n,
                            int64_t per_sample) {
  RAE_GRID_LOOP(i, n) {
    float tb = t.ld(i / per_sample), xv = x.ld(i), ev = eps.ld(i);
    if (xt.valid()) xt.st(i, (1.f - tb) * xv + tb * ev);
    if (target.valid()) target.st(i, ev - xv);
  }
}

void same_size(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  require(a, op, an);
  require(b, op, bn);
  RAE_CHECK(a.numel() == b.numel(), op, ": '", an, "' ", a.str(), " and '", bn, "' ", b.str(),
            " differ in size");
}

double sum_sq(const Tensor& x, const Tensor& y, const char* op) {
  return device_sum(SumSq{ptr(x, op, "x"), ptr(y, op, "y")}, x.numel(), op);
}

// s[slot] += scale * sum((x - y)^2) / divisor on the device (y may be undefined).
void sum_sq_into(const Tensor& s, int slot, const Tensor& x, const Tensor& y, double scale,
                 double divisor, const char* op) {
  device_sum_into(SumSq{ptr(x, op, "x"), ptr(y, op, "y")}, x.numel(),
                  static_cast<double*>(s.raw()) + slot, scale, divisor, op);
}

}  // namespace

void add_(const Tensor& y, const Tensor& x, double alpha) {
  const char* op = "cuda::add_";
  same_size(y, x, op, "y", "x");
  int64_t n = y.numel();
  if (n == 0) return;
  if (fast_axpy(y, x, (float)alpha)) return;
  axpy_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(y, op, "y"), ptr(x, op, "x"), (float)alpha,
                                                    n);
  RAE_CUDA_LAUNCHED(op);
}

void scale_(const Tensor& x, double alpha) {
  const char* op = "cuda::scale_";
  require(x, op, "x");
  int64_t n = x.numel();
  if (n == 0) return;
  scale_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(x, op, "x"), (float)alpha, n);
  RAE_CUDA_LAUNCHED(op);
}

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* op = "cuda::add";
  same_size(out, a, op, "out", "a");
  same_size(out, b, op, "out", "b");
  int64_t n = out.numel();
  if (n == 0) return;
  add_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(out, op, "out"), ptr(a, op, "a"),
                                                   ptr(b, op, "b"), n);
  RAE_CUDA_LAUNCHED(op);
}

void add_rowwise(const Tensor& out, const Tensor& x, const Tensor& row) {
  const char* op = "cuda::add_rowwise";
  same_size(out, x, op, "out", "x");
  require(row, op, "row");
  int64_t C = last_dim(x), n = x.numel();
  RAE_CHECK(C > 0 && last_dim(row) == C && n % row.numel() == 0, op, ": row ", row.str(),
            " is not (C) or (R, C) with R dividing the rows of ", x.str());
  int64_t N = n / C, R = row.numel() / C;
  if (n == 0) return;
  add_rowwise_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), ptr(row, op, "row"), N, C, R);
  RAE_CUDA_LAUNCHED(op);
}

// drow[p, c] += sum over dout rows i with i % R == p: group p's k-th row is row k * R + p.
struct RowTableSum {
  Ptr dout;
  int64_t C, R, per_group;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    int64_t p = n / per_group, k = n - p * per_group;
    acc[0] += dout.ld2(k * R + p, c, C);
  }
};

void add_rowwise_backward(const Tensor& drow, const Tensor& dout) {
  const char* op = "cuda::add_rowwise_backward";
  if (!drow.defined()) return;
  require(dout, op, "dout");
  int64_t C = last_dim(dout), n = dout.numel();
  RAE_CHECK(C > 0 && last_dim(drow) == C && n % drow.numel() == 0, op, ": drow ", drow.str(),
            " is not (C) or (R, C) with R dividing the rows of dout ", dout.str());
  int64_t N = n / C, R = drow.numel() / C;
  col_reduce<1>(RowTableSum{ptr(dout, op, "dout"), C, R, N / R}, R, N / R, C,
                ptr(drow, op, "drow"));
}

double sum_squares(const Tensor& x) {
  require(x, "cuda::sum_squares", "x");
  return sum_sq(x, Tensor(), "cuda::sum_squares");
}

bool all_finite(const Tensor& x) {
  const char* op = "cuda::all_finite";
  require(x, op, "x");
  int64_t n = x.numel();
  if (n == 0) return true;
  Tensor flag = Tensor::zeros({1}, DType::I32, x.device());
  nonfinite_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(x, op, "x"), n,
                                                         static_cast<int*>(flag.raw()));
  RAE_CUDA_LAUNCHED(op);
  int h = 0;
  RAE_CUDA_CHECK(cudaMemcpy(&h, flag.raw(), sizeof(int), cudaMemcpyDeviceToHost));
  return h == 0;
}

void mse_forward_acc(const Tensor& s, const Tensor& pred, const Tensor& target, double scale) {
  const char* op = "cuda::mse_forward_acc";
  same_size(pred, target, op, "pred", "target");
  RAE_CHECK(pred.numel() > 0, op, ": empty input");
  sum_sq_into(s, kLoss, pred, target, scale, static_cast<double>(pred.numel()), op);
}

void sum_squares_acc(const Tensor& s, const Tensor& x) {
  require(x, "cuda::sum_squares_acc", "x");
  sum_sq_into(s, kGradSumSq, x, Tensor(), 1.0, 1.0, "cuda::sum_squares_acc");
}

double mse_forward(const Tensor& pred, const Tensor& target) {
  const char* op = "cuda::mse_forward";
  same_size(pred, target, op, "pred", "target");
  int64_t n = pred.numel();
  RAE_CHECK(n > 0, op, ": empty input");
  return sum_sq(pred, target, op) / static_cast<double>(n);
}

void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, double scale) {
  const char* op = "cuda::mse_backward";
  if (!dpred.defined()) return;
  same_size(dpred, pred, op, "dpred", "pred");
  same_size(pred, target, op, "pred", "target");
  int64_t n = pred.numel();
  if (n == 0) return;
  mse_bwd_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(
      ptr(dpred, op, "dpred"), ptr(pred, op, "pred"), ptr(target, op, "target"),
      static_cast<float>(2.0 * scale / static_cast<double>(n)), n);
  RAE_CUDA_LAUNCHED(op);
}

void flow_interpolate(const Tensor& xt, const Tensor& target, const Tensor& x, const Tensor& eps,
                      const Tensor& t) {
  const char* op = "cuda::flow_interpolate";
  same_size(x, eps, op, "x", "eps");
  if (xt.defined()) same_size(xt, x, op, "xt", "x");
  if (target.defined()) same_size(target, x, op, "target", "x");
  require(t, op, "t");
  Ptr tp = ptr(t, op, "t");
  int64_t B = t.numel(), n = x.numel();
  RAE_CHECK(B > 0 && n % B == 0, op, ": x ", x.str(), " is not ", B, " samples (t ", t.str(), ")");
  if (n == 0) return;
  flow_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(xt, op, "xt"), ptr(target, op, "target"),
                                                    ptr(x, op, "x"), ptr(eps, op, "eps"), tp, n,
                                                    n / B);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
