// Basic layers over the ParamStore: Linear, column split/merge for adaLN chunks, token sums.
// Each layer records parameter ids at declaration; forward/backward take the store.
// Backward ACCUMULATES into parameter grads and into dx (the ops' convention). Parameters whose
// gradients are unbound (a frozen model, distributed::ShardedParams::set_trainable) get none.
#pragma once
#include <string>
#include <vector>

#include "nn/arena.h"
#include "nn/params.h"
#include "ops/grad_mode.h"

namespace rae::nn {

struct Linear {
  int w = -1, b = -1;
  int64_t in = 0, out = 0;
  // Declares `prefix.weight` (out, in) [+ `prefix.bias` (out)]. `weight_shape` overrides the
  // stored shape (conv patch embedders store (out, in, 1, 1)).
  void declare(ParamStore& ps, const std::string& prefix, int64_t in_features, int64_t out_features,
               bool bias = true, const Shape& weight_shape = {});
  Tensor weight(const ParamStore& ps) const;  // (out, in) view
  Tensor weight_grad(const ParamStore& ps) const;
  // out (N, out) = x (N, in) W^T + b
  void forward(const ParamStore& ps, const Tensor& out, const Tensor& x) const;
  // dx (N, in) += dout W (dx may be undefined; GradMode::Overwrite: dx = dout W); dW, db += ...
  void backward(const ParamStore& ps, const Tensor& dx, const Tensor& dout, const Tensor& x,
                ops::GradMode mode = ops::GradMode::Accumulate) const;
};

// A Linear whose output is used as k equal chunks (adaLN: torch .chunk(k, -1)): chunk i is
// x @ W[i*C:(i+1)*C]^T + b[i*C:(i+1)*C], computed straight into parts[i] (R, C) from row
// slices of W (contiguous), so no split copy is needed and it runs on any device.
void chunked_linear_forward(const ParamStore& ps, const Linear& l, const std::vector<Tensor>& parts,
                            const Tensor& x);
// dx (R, in) += sum_i dparts[i] W_i; dW_i, db_i += ... (undefined dparts are skipped).
// GradMode::Overwrite: dx = sum_i ... (the first chunk's product writes dx, the rest add).
void chunked_linear_backward(const ParamStore& ps, const Linear& l, const Tensor& dx,
                             const std::vector<Tensor>& dparts, const Tensor& x,
                             ops::GradMode mode = ops::GradMode::Accumulate);
// out (B, T, C) = x (B, T, C) + row (B, C) broadcast over T, in one op (a per-sample
// modulation with zero scale, exact: x * 1 + row); the zero scale comes from `arena`.
void add_per_sample(Arena& arena, const Tensor& out, const Tensor& x, const Tensor& row);
// drow (B, C) += sum over T of d (B, T, C), in one op (the shift gradient of that modulation).
void sum_tokens_add(Arena& arena, const Tensor& drow, const Tensor& d);

}  // namespace rae::nn
