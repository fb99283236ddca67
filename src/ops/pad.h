// Circular padding of sequences, channels last: the discriminator heads' Conv1d with
// padding_mode="circular" is F.pad(x, (p, p), mode="circular") followed by an unpadded conv.
//   forward:  x (N, L, C) -> out (N, L + 2p, C), out[n, i] = x[n, (i - p) mod L]   (p <= L)
//   backward: dx[n, j] += sum of dout[n, i] over the (one to three) i that read x[n, j]
// x/dx contiguous, out/dout contiguous; gathers in a fixed order (deterministic, no atomics).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace rae::ops {

void pad_circular1d_forward(const Tensor& out, const Tensor& x, int64_t pad);
void pad_circular1d_backward(const Tensor& dx, const Tensor& dout, int64_t pad);

namespace cpu {
void pad_circular1d_forward(const Tensor& out, const Tensor& x, int64_t pad);
void pad_circular1d_backward(const Tensor& dx, const Tensor& dout, int64_t pad);
}  // namespace cpu
namespace cuda {
void pad_circular1d_forward(const Tensor& out, const Tensor& x, int64_t pad);
void pad_circular1d_backward(const Tensor& dx, const Tensor& dout, int64_t pad);
}  // namespace cuda

}  // namespace rae::ops
