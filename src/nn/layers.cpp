#include "nn/layers.h"

#include "core/error.h"
#include "ops/linear.h"
#include "ops/modulate.h"

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

Tensor Linear::weight(const ParamStore& ps) const {
  return ps.value(w).view({out, in});
}
Tensor Linear::weight_grad(const ParamStore& ps) const {
  const Tensor& g = ps.grad(w);
  return g.defined() ? g.view({out, in}) : Tensor();  // undefined: no parameter gradients
}

void Linear::forward(const ParamStore& ps, const Tensor& y, const Tensor& x) const {
  ops::linear_forward(y, x, weight(ps), b >= 0 ? ps.value(b) : Tensor());
}

void Linear::backward(const ParamStore& ps, const Tensor& dx, const Tensor& dout, const Tensor& x,
                      ops::GradMode mode) const {
  ops::linear_backward(dx, weight_grad(ps), b >= 0 ? ps.grad(b) : Tensor(), dout, x, weight(ps),
                       mode);
}

void chunked_linear_forward(const ParamStore& ps, const Linear& l, const std::vector<Tensor>& parts,
                            const Tensor& x) {
  const int64_t k = static_cast<int64_t>(parts.size()), C = l.out / k;
  RAE_CHECK(C * k == l.out, "chunked_linear_forward: ", l.out, " outputs in ", k, " chunks");
  Tensor w = l.weight(ps);
  for (int64_t i = 0; i < k; ++i)
    ops::linear_forward(parts[i], x, w.narrow(0, i * C, C),
                        l.b >= 0 ? ps.value(l.b).narrow(0, i * C, C) : Tensor());
}

void chunked_linear_backward(const ParamStore& ps, const Linear& l, const Tensor& dx,
                             const std::vector<Tensor>& dparts, const Tensor& x,
                             ops::GradMode mode) {
  const int64_t k = static_cast<int64_t>(dparts.size()), C = l.out / k;
  Tensor w = l.weight(ps), dw = l.weight_grad(ps);
  const Tensor db = l.b >= 0 ? ps.grad(l.b) : Tensor();
  for (int64_t i = 0; i < k; ++i) {
    if (!dparts[i].defined()) continue;
    ops::linear_backward(dx, dw.defined() ? dw.narrow(0, i * C, C) : Tensor(),
                         db.defined() ? db.narrow(0, i * C, C) : Tensor(), dparts[i], x,
                         w.narrow(0, i * C, C), mode);
    mode = ops::GradMode::Accumulate;  // dx now holds the first chunk's product
  }
  if (mode == ops::GradMode::Overwrite) ops::zero_grad_buffer(dx);  // every chunk was undefined
}

void add_per_sample(Arena& arena, const Tensor& out, const Tensor& x, const Tensor& row) {
  ops::modulate_forward(out, x, row, arena.zeros(row.shape(), row.dtype()));
}

void sum_tokens_add(Arena& arena, const Tensor& drow, const Tensor& d) {
  ops::modulate_backward(Tensor(), drow, Tensor(), d, d, arena.zeros(drow.shape(), d.dtype()));
}

}  // namespace rae::nn
