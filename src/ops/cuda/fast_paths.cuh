// The vectorised fast paths of the CUDA row ops, each called first by its op and returning false
// (nothing done) when the tensors do not allow it (dtypes, alignment, widths) or when
// RAE_CUDA_LEGACY turns it off; the op then runs its scalar kernels. Arguments are already
// checked by the op.
#pragma once
#include "ops/cuda/common.cuh"

namespace rae::ops::cuda_detail {

// norm_fast.cu. `pr` is the conditioning's row grouping (rows_per_param = 1: per token, or none).
bool fast_rmsnorm_modulate_forward(const Tensor& out, float* rstd, const Tensor& x, const Tensor& w,
                                   const Tensor& shift, const Tensor& scale, const ParamRows& pr,
                                   double eps);
bool fast_layernorm_forward(const Tensor& out, float* mean, float* rstd, const Tensor& x,
                            const Tensor& w, const Tensor& b, double eps);
// overwrite: dshift and dscale are written, not accumulated (GradMode::Overwrite).
bool fast_rmsnorm_modulate_backward(const Tensor& dx, const Tensor& dw, const Tensor& dshift,
                                    const Tensor& dscale, const Tensor& dout, const Tensor& x,
                                    const Tensor& w, const Tensor& scale, const float* rstd,
                                    const ParamRows& pr, bool overwrite = false);

}  // namespace rae::ops::cuda_detail

namespace rae::ops::cuda_detail {

// elementwise_fast.cu (RAE_CUDA_LEGACY=elementwise turns these off).
bool fast_swiglu_forward(const Tensor& out, const Tensor& x12);
// overwrite: dx12 = ... instead of +=.
bool fast_swiglu_backward(const Tensor& dx12, const Tensor& dout, const Tensor& x12,
                          bool overwrite = false);
// x += gate[p] * y.
bool fast_gate_forward(const Tensor& x, const Tensor& y, const Tensor& gate, const ParamRows& pr);
// dy += gate[p] * dres; dgate[p] += sum over the group's rows of dres * y (one pass);
// overwrite: both written (=).
bool fast_gate_backward(const Tensor& dy, const Tensor& dgate, const Tensor& dres, const Tensor& y,
                        const Tensor& gate, const ParamRows& pr, bool overwrite = false);
// y += alpha * x (contiguous, same dtype).
bool fast_axpy(const Tensor& y, const Tensor& x, float alpha);

}  // namespace rae::ops::cuda_detail
