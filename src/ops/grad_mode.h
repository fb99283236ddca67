// How a backward op treats the activation-gradient buffers it writes. The ops' contract is to
// ACCUMULATE (ops/README.md: dx += ...), which makes residual streams and gradient accumulation
// free but costs a zero-fill of every fresh gradient buffer (the DiT block had 8 activation-sized
// ones per block, about 40% more bytes written than the backward itself needs). Overwrite: the
// buffers named for each op are fresh (uninitialised, possibly NaN garbage) and the op WRITES
// them, so the caller allocates them empty. Which outputs follow the mode is stated in each op's
// comment; parameter gradients (dw, db, norm weights) always accumulate.
//
// Results: Overwrite gives the values that Accumulate gives on zero-filled buffers (bit for bit
// on the CPU, where x + 0 == x; on CUDA the same kernels run, minus the load of the old value).
//
// Run-time switch for the users of the mode (nn/dit_block.cpp): RAE_GRAD_OVERWRITE=0 in the
// environment (or set_grad_overwrite(false)) keeps the zero-fill + Accumulate path, the one used
// before the mode existed; the device check runs both.
#pragma once
#include "tensor/tensor.h"

namespace rae::ops {

enum class GradMode { Accumulate, Overwrite };

// Whether models should use GradMode::Overwrite for fresh gradient buffers (default true;
// RAE_GRAD_OVERWRITE=0 turns it off at start-up).
bool grad_overwrite_enabled();
void set_grad_overwrite(bool on);

// Zeroes a gradient buffer that an op will accumulate into: the fallback of an op whose kernel
// has no native overwrite (the op then accumulates). Row-strided tensors (adaLN chunks) are
// zeroed row by row, leaving the other columns of the wider tensor untouched. No-op for
// undefined tensors.
void zero_grad_buffer(const Tensor& t);

}  // namespace rae::ops
