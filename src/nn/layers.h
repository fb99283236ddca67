// Basic layers over the ParamStore: Linear, column split/merge for adaLN chunks, token sums.
// Each layer records parameter ids at declaration; forward/backward take the store.
// Backward ACCUMULATES into parameter grads and into dx (the ops' convention).
#pragma once
#include <string>
#include <vector>

#include "nn/arena.h"
#include "nn/params.h"

namespace rae::nn {

struct Linear {
  int w = -1, b = -1;
  int64_t in = 0, out = 0;
  // Declares `prefix.weight` (out, in) [+ `prefix.bias` (out)]. `weight_shape` overrides the
  // stored shape (conv patch embedders store (out, in, 1, 1)).
  void declare(ParamStore& ps, const std::string& prefix, int64_t in_features,
               int64_t out_features, bool bias = true, const Shape& weight_shape = {});
  Tensor weight(const ParamStore& ps) const;  // (out, in) view
  Tensor weight_grad(const ParamStore& ps) const;
  // out (N, out) = x (N, in) W^T + b
  void forward(const ParamStore& ps, const Tensor& out, const Tensor& x) const;
  // dx (N, in) += dout W (dx may be undefined); dW, db += ...
  void backward(const ParamStore& ps, const Tensor& dx, const Tensor& dout, const Tensor& x) const;
};

// src (R, k*C) -> parts[i] (R, C) = src[:, i*C:(i+1)*C] (contiguous copies).
void split_columns(const Tensor& src, const std::vector<Tensor>& parts);
// dst (R, k*C) += parts[i] in its i-th column block; undefined parts are skipped.
void merge_columns_add(const Tensor& dst, const std::vector<Tensor>& parts);
// out (B, T, C) = x (B, T, C) + row (B, C) broadcast over T.
void add_per_sample(const Tensor& out, const Tensor& x, const Tensor& row);
// drow (B, C) += sum over T of d (B, T, C), summed in token order (deterministic).
void sum_tokens_add(const Tensor& drow, const Tensor& d);

}  // namespace rae::nn
