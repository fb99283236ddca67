// CUDA adaLN modulation and gated residuals, per-sample (B, C) or per-token (B, T, C) parameters.
#include "ops/cuda/common.cuh"
#include "ops/cuda/fast_paths.cuh"
#include "ops/modulate.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

// out = x * (1 + scale[p]) + shift[p], p = row / rows_per_param.
__global__ void modulate_fwd_kernel(Ptr out, Ptr x, Ptr shift, Ptr scale, int64_t N, int64_t C,
                                    int64_t rpp) {
  RAE_ROW_LOOP(r, c, N, C) {
    int64_t p = r / rpp;
    float y = x.ld2(r, c, C) * (1.f + scale.ld2(p, c, C));
    if (shift.valid()) y += shift.ld2(p, c, C);
    out.st2(r, c, C, y);
  }
}
__global__ void modulate_bwd_dx_kernel(Ptr dx, Ptr dout, Ptr scale, int64_t N, int64_t C,
                                       int64_t rpp) {
  RAE_ROW_LOOP(r, c, N, C) dx.add2(r, c, C, dout.ld2(r, c, C) * (1.f + scale.ld2(r / rpp, c, C)));
}
struct ModulateGrad {  // acc[0] (dshift) += dout; acc[1] (dscale) += dout * x
  Ptr dout, x;
  int64_t C;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    float g = dout.ld2(n, c, C);
    acc[0] += g;
    acc[1] += g * x.ld2(n, c, C);
  }
};

// x += gate[p] * y.
__global__ void gate_fwd_kernel(Ptr x, Ptr y, Ptr gate, int64_t N, int64_t C, int64_t rpp) {
  RAE_ROW_LOOP(r, c, N, C) x.add2(r, c, C, gate.ld2(r / rpp, c, C) * y.ld2(r, c, C));
}
__global__ void gate_bwd_dy_kernel(Ptr dy, Ptr dres, Ptr gate, int64_t N, int64_t C, int64_t rpp) {
  RAE_ROW_LOOP(r, c, N, C) dy.add2(r, c, C, gate.ld2(r / rpp, c, C) * dres.ld2(r, c, C));
}
struct GateGrad {  // acc[0] (dgate) += dres * y
  Ptr dres, y;
  int64_t C;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const {
    acc[0] += dres.ld2(n, c, C) * y.ld2(n, c, C);
  }
};

}  // namespace

void modulate_forward(const Tensor& out, const Tensor& x, const Tensor& shift,
                      const Tensor& scale) {
  const char* op = "cuda::modulate_forward";
  require(x, op, "x");
  require(scale, op, "scale");
  int64_t C = last_dim(x), N = x.numel() / C;
  require_numel(out, N * C, op, "out");
  require(out, op, "out");
  ParamRows pr = param_rows_for(scale, N, C, op, "scale");
  require_numel(shift, scale.numel(), op, "shift");
  if (N * C == 0) return;
  modulate_fwd_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(x, op, "x"), ptr(shift, op, "shift"), ptr(scale, op, "scale"), N, C,
      pr.rows_per_param);
  RAE_CUDA_LAUNCHED(op);
}

void modulate_backward(const Tensor& dx, const Tensor& dshift, const Tensor& dscale,
                       const Tensor& dout, const Tensor& x, const Tensor& scale) {
  const char* op = "cuda::modulate_backward";
  require(x, op, "x");
  require(dout, op, "dout");
  require(scale, op, "scale");
  int64_t C = last_dim(x), N = x.numel() / C;
  require_numel(dout, N * C, op, "dout");
  require_numel(dx, N * C, op, "dx");
  ParamRows pr = param_rows_for(scale, N, C, op, "scale");
  require_numel(dshift, scale.numel(), op, "dshift");
  require_numel(dscale, scale.numel(), op, "dscale");
  if (N * C == 0) return;
  if (dx.defined()) {
    modulate_bwd_dx_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
        ptr(dx, op, "dx"), ptr(dout, op, "dout"), ptr(scale, op, "scale"), N, C, pr.rows_per_param);
    RAE_CUDA_LAUNCHED(op);
  }
  if (dshift.defined() || dscale.defined())
    col_reduce<2>(ModulateGrad{ptr(dout, op, "dout"), ptr(x, op, "x"), C}, pr.param_rows,
                  pr.rows_per_param, C, ptr(dshift, op, "dshift"), ptr(dscale, op, "dscale"));
}

void gate_residual_forward(const Tensor& x, const Tensor& y, const Tensor& gate) {
  const char* op = "cuda::gate_residual_forward";
  require(x, op, "x");
  require(gate, op, "gate");
  int64_t C = last_dim(x), N = x.numel() / C;
  require(y, op, "y");
  require_numel(y, N * C, op, "y");
  ParamRows pr = param_rows_for(gate, N, C, op, "gate");
  if (N * C == 0) return;
  if (fast_gate_forward(x, y, gate, pr)) return;
  gate_fwd_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
      ptr(x, op, "x"), ptr(y, op, "y"), ptr(gate, op, "gate"), N, C, pr.rows_per_param);
  RAE_CUDA_LAUNCHED(op);
}

void gate_residual_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres,
                            const Tensor& y, const Tensor& gate, GradMode mode) {
  const char* op = "cuda::gate_residual_backward";
  require(dres, op, "dres");
  require(gate, op, "gate");
  int64_t C = last_dim(dres), N = dres.numel() / C;
  require_numel(dy, N * C, op, "dy");
  ParamRows pr = param_rows_for(gate, N, C, op, "gate");
  require_numel(dgate, gate.numel(), op, "dgate");
  if (N * C == 0) return;
  if (dgate.defined()) {
    require(y, op, "y");
    require_numel(y, N * C, op, "y");
  }
  const bool overwrite = mode == GradMode::Overwrite;
  if (fast_gate_backward(dy, dgate, dres, y, gate, pr, overwrite)) return;
  if (overwrite) {  // the scalar kernels accumulate
    zero_grad_buffer(dy);
    zero_grad_buffer(dgate);
  }
  if (dy.defined()) {
    gate_bwd_dy_kernel<<<grid_rows(N), threads_for_cols(C), 0, cur_stream()>>>(
        ptr(dy, op, "dy"), ptr(dres, op, "dres"), ptr(gate, op, "gate"), N, C, pr.rows_per_param);
    RAE_CUDA_LAUNCHED(op);
  }
  if (dgate.defined()) {
    require(y, op, "y");
    require_numel(y, N * C, op, "y");
    col_reduce<1>(GateGrad{ptr(dres, op, "dres"), ptr(y, op, "y"), C}, pr.param_rows,
                  pr.rows_per_param, C, ptr(dgate, op, "dgate"));
  }
}

}  // namespace rae::ops::cuda
