#include "toy_module.h"

#include <algorithm>
#include <cmath>

#include "ops/elementwise.h"

namespace rae::test {

namespace {
double max_diff(const Tensor& a, const Tensor& ref) {
  Tensor h = a.to(Device::cpu()).cast(DType::F32);
  double m = 0;
  for (int64_t i = 0; i < h.numel(); ++i)
    m = std::max(m, std::abs(static_cast<double>(h.data<float>()[i]) - ref.data<float>()[i]));
  return m;
}
}  // namespace

ToyResult train_toy(distributed::Communicator* world, const distributed::ShardingOptions& opts,
                    Device device, int num_micro, int steps, int blocks, int scale) {
  const int W = world ? world->size() : 1, rank = world ? world->rank() : 0;
  const float lr = 0.3f;
  ToyModule model(blocks, scale);
  model.init(7);
  const nn::ParamStore& ps = model.params();
  const int P = static_cast<int>(ps.params().size());
  std::vector<Tensor> ref(P);
  for (int i = 0; i < P; ++i) ref[i] = ps.value(i).clone();
  model.to(device);
  distributed::ShardGroups groups = distributed::ShardGroups::make(world, opts.strategy);
  ToyResult out;
  distributed::ShardedParams sp(model, groups, device, opts);
  auto params_of_group = [&](int g) { return ps.groups()[g].params; };
  auto check_group = [&](int g) {
    for (int id : params_of_group(g))
      out.max_diff = std::max(out.max_diff, max_diff(ps.value(id), ref[id]));
  };
  // Each rank's share of the global mean over (rank, micro-batch): (p - d) / (W * M).
  auto add_grads = [&](int g, int m) {
    for (int id : params_of_group(g)) {
      const Tensor& v = ps.value(id);
      Tensor d = toy_data(rank, m, id, ps.params()[id].shape);
      Tensor grad = (v.to(Device::cpu()).cast(DType::F32));
      float* gp = grad.data<float>();
      for (int64_t i = 0; i < grad.numel(); ++i)
        gp[i] = (gp[i] - d.data<float>()[i]) / static_cast<float>(W * num_micro);
      Tensor cur = ps.grad(id).to(Device::cpu());
      for (int64_t i = 0; i < grad.numel(); ++i) gp[i] += cur.data<float>()[i];
      Tensor(ps.grad(id)).copy_from(grad.to(device));
    }
  };
  const std::vector<int> bg = model.block_groups();
  const int root_first = 0, root_last = static_cast<int>(ps.groups().size()) - 1;
  for (int step = 0; step < steps; ++step) {
    for (int m = 0; m < num_micro; ++m) {
      sp.begin_micro_batch(m, num_micro);
      check_group(root_first);
      check_group(root_last);
      for (int k = 0; k < blocks; ++k) {
        sp.before_forward(k);
        check_group(bg[k]);
        sp.after_forward(k);
      }
      add_grads(root_last, m);
      for (int k = blocks - 1; k >= 0; --k) {
        sp.before_backward(k);
        check_group(bg[k]);
        add_grads(bg[k], m);
        sp.after_backward(k);
      }
      add_grads(root_first, m);
      sp.end_micro_batch();
    }
    sp.finish_gradients();
    for (size_t b = 0; b < sp.masters().size(); ++b)  // SGD on the owned shards
      ops::add_(sp.masters()[b], sp.grads()[b], -lr);
    sp.publish();
    // Reference: p -= lr * (p - mean over ranks and micro-batches of d).
    for (int id = 0; id < P; ++id) {
      const Shape& shape = ps.params()[id].shape;
      std::vector<double> mean(shape.numel(), 0.0);
      for (int r = 0; r < W; ++r)
        for (int mm = 0; mm < num_micro; ++mm) {
          Tensor d = toy_data(r, mm, id, shape);
          for (int64_t i = 0; i < shape.numel(); ++i) mean[i] += d.data<float>()[i];
        }
      float* p = ref[id].data<float>();
      for (int64_t i = 0; i < shape.numel(); ++i)
        p[i] -= lr * (p[i] - static_cast<float>(mean[i] / (W * num_micro)));
    }
  }
  out.peak_bytes = sp.bytes_peak();
  // Final values, gathered once more.
  sp.begin_micro_batch(0, 1);
  out.params.assign(P, Tensor());
  for (int g = 0; g < static_cast<int>(ps.groups().size()); ++g) {
    const bool block = std::find(bg.begin(), bg.end(), g) != bg.end();
    const int k = block ? static_cast<int>(std::find(bg.begin(), bg.end(), g) - bg.begin()) : -1;
    if (block) sp.before_forward(k);
    for (int id : params_of_group(g)) {
      out.params[id] = ps.value(id).to(Device::cpu()).cast(DType::F32);
      out.max_diff = std::max(out.max_diff, max_diff(ps.value(id), ref[id]));
    }
    if (block) sp.after_forward(k);
  }
  sp.finish_gradients();
  out.end_bytes = sp.bytes_now();
  return out;
}

}  // namespace rae::test
