// The interface of the stage-2 models (DiT^DH, plain LightningDiT): velocity prediction on a
// token grid, v = model(x_t, t, y). Flow matching (train/flow_matching.h) trains any Denoiser,
// and sampling (diffusion/sampling_model.h) runs any Denoiser.
#pragma once
#include <cstdint>

#include "nn/arena.h"
#include "nn/module.h"

namespace rae::models {

class Denoiser : public nn::Module {
 public:
  // Inputs are (B, tokens(), channels()) with tokens() = grid() * grid(), row-major (h, w).
  virtual int64_t grid() const = 0;
  virtual int64_t channels() const = 0;
  int64_t tokens() const { return grid() * grid(); }
  // Labels are 0..num_classes()-1; num_classes() itself is the null (dropped) label when the
  // model has one (has_null_class()).
  virtual int64_t num_classes() const = 0;
  virtual bool has_null_class() const = 0;

  // x (B, T, C) tokens of x_t (the arena's activation dtype or F32), t (B) F32, y (B) I32; out
  // (B, T, C). Saves what backward needs in `arena`, which must not be reset before backward.
  virtual void forward(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
                       const Tensor& y) = 0;
  // Accumulates parameter gradients for dL/dout (B, T, C) of the last forward.
  virtual void backward(nn::Arena& arena, const Tensor& dout) = 0;
  // Inference (sampling): the same output as forward(), bit for bit, without keeping what
  // backward needs: each block's temporaries are rewound after the block (nn::Arena::mark), so
  // the arena holds about one block's activations instead of all of them. No backward may
  // follow. The block hooks fire as in forward().
  virtual void infer(nn::Arena& arena, const Tensor& out, const Tensor& x, const Tensor& t,
                     const Tensor& y) = 0;
};

}  // namespace rae::models
