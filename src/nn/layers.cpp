#include "nn/layers.h"

#include "core/error.h"
#include "ops/elementwise.h"
#include "ops/linear.h"

namespace rae::nn {

void Linear::declare(ParamStore& ps, const std::string& prefix, int64_t in_features,
                     int64_t out_features, bool bias, const Shape& weight_shape) {
  in = in_features;
  out = out_features;
  Shape ws = weight_shape.size() ? weight_shape : Shape{out, in};
  RAE_CHECK(ws.numel() == in * out, "Linear ", prefix, ": weight shape ", ws.str());
  w = ps.add(prefix + ".weight", ws);
  b = bias ? ps.add(prefix + ".bias", {out}) : -1;
}

Tensor Linear::weight(const ParamStore& ps) const { return ps.value(w).view({out, in}); }
Tensor Linear::weight_grad(const ParamStore& ps) const { return ps.grad(w).view({out, in}); }

void Linear::forward(const ParamStore& ps, const Tensor& y, const Tensor& x) const {
  ops::linear_forward(y, x, weight(ps), b >= 0 ? ps.value(b) : Tensor());
}

void Linear::backward(const ParamStore& ps, const Tensor& dx, const Tensor& dout,
                      const Tensor& x) const {
  ops::linear_backward(dx, weight_grad(ps), b >= 0 ? ps.grad(b) : Tensor(), dout, x, weight(ps));
}

void split_columns(const Tensor& src, const std::vector<Tensor>& parts) {
  int64_t R = src.dim(0), K = src.dim(1), k = static_cast<int64_t>(parts.size()), C = K / k;
  RAE_CHECK(C * k == K && src.is_contiguous(), "split_columns: ", src.str());
  const float* s = src.data<float>();
  for (int64_t i = 0; i < k; ++i) {
    float* d = parts[i].data<float>();
    RAE_CHECK(parts[i].numel() == R * C, "split_columns: part ", parts[i].str());
    for (int64_t r = 0; r < R; ++r)
      std::copy(s + r * K + i * C, s + r * K + (i + 1) * C, d + r * C);
  }
}

void merge_columns_add(const Tensor& dst, const std::vector<Tensor>& parts) {
  int64_t R = dst.dim(0), K = dst.dim(1), k = static_cast<int64_t>(parts.size()), C = K / k;
  float* d = dst.data<float>();
  for (int64_t i = 0; i < k; ++i) {
    if (!parts[i].defined()) continue;
    const float* s = parts[i].data<float>();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) d[r * K + i * C + c] += s[r * C + c];
  }
}

void add_per_sample(const Tensor& out, const Tensor& x, const Tensor& row) {
  int64_t B = x.dim(0);
  for (int64_t b = 0; b < B; ++b) ops::add_rowwise(out[b], x[b], row[b]);
}

void sum_tokens_add(const Tensor& drow, const Tensor& d) {
  int64_t B = d.dim(0), T = d.dim(1), C = d.dim(2);
  const float* s = d.data<float>();
  float* o = drow.data<float>();
  std::vector<double> acc(C);
  for (int64_t b = 0; b < B; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) acc[c] += s[(b * T + t) * C + c];
    for (int64_t c = 0; c < C; ++c) o[b * C + c] += static_cast<float>(acc[c]);
  }
}

}  // namespace rae::nn
