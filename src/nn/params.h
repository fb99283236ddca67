// Parameter registry: named F32 master parameters with gradients, stored in flat per-group
// buffers (one group per transformer block, plus the embedders and the final layer), so that a
// distributed helper can shard or all-reduce per block, and the optimizer runs on flat buffers.
// Fixed tensors that belong to the state dict (sin-cos position table, Fourier W) are buffers:
// saved and loaded with the parameters but never optimized.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::nn {

struct ParamInfo {
  std::string name;
  Shape shape;
  int group = 0;
  int64_t offset = 0;  // elements into the group's flat buffer
};

struct ParamGroup {
  std::string name;
  int64_t numel = 0;
  Tensor data, grad;  // flat (numel) F32
  std::vector<int> params;
};

class ParamStore {
 public:
  // Declaration phase: params go into the current group.
  int begin_group(const std::string& name);
  int add(const std::string& name, const Shape& shape);
  int add_buffer(const std::string& name, const Shape& shape);
  // Allocates the flat buffers (zeros) and the buffers; no declarations after this.
  void allocate(Device device = Device::cpu());
  bool allocated() const { return allocated_; }
  // Moves every flat buffer, gradient and buffer to `device` (views rebuilt; grads zeroed).
  void to_device(Device device);
  // Rebinds group g's flat buffers (numel F32 each, or undefined to release them): ZeRO-3 keeps a
  // block's gathered parameters and its gradient buffer only around the block's use. The views
  // value()/grad() of the group's parameters follow (undefined while released).
  void bind_group(int g, const Tensor& data, const Tensor& grad);
  Device device() const { return groups_.empty() ? Device::cpu() : groups_[0].data.device(); }

  const Tensor& value(int id) const { return values_.at(id); }
  const Tensor& grad(int id) const { return grads_.at(id); }
  const Tensor& buffer(int id) const { return buffers_.at(id); }
  const std::vector<ParamInfo>& params() const { return params_; }
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  const std::vector<std::string>& buffer_names() const { return buffer_names_; }
  int find(const std::string& name) const;  // -1 when absent

  int64_t num_params() const;  // trainable elements
  void zero_grad();
  // Parameters and buffers by name (views into the flat buffers).
  std::map<std::string, Tensor> state_dict() const;
  // Copies every parameter and buffer from `tensors` (any float dtype is cast to F32). Names
  // missing from `tensors` or unknown names in it are errors naming them (when strict).
  void load_state_dict(const std::map<std::string, Tensor>& tensors, const std::string& source,
                       bool strict = true);
  // Same names, for another flat set of the same layout (EMA weights, optimizer moments).
  std::map<std::string, Tensor> views_of(const std::vector<Tensor>& group_buffers) const;

 private:
  std::vector<ParamInfo> params_;
  std::vector<ParamGroup> groups_;
  std::vector<Tensor> values_, grads_;
  std::vector<std::string> buffer_names_;
  std::vector<Shape> buffer_shapes_;
  std::vector<Tensor> buffers_;
  std::map<std::string, int> by_name_;  // params >= 0, buffers encoded as -(id + 2)
  bool allocated_ = false;
};

}  // namespace rae::nn
