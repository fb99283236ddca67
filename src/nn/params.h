// Parameter registry: named parameters with gradients, stored in flat per-group buffers (one
// group per transformer block, plus the embedders and the final layer), so that the sharding
// core (distributed/sharded_params.h) can gather, reduce and update them per group. Each
// parameter starts at a multiple of kParamAlign elements inside its group (aligned GEMM operands;
// the holes stay zero and never get gradients). allocate() makes F32 buffers for init; the
// sharding core later binds each group to its own buffers (bind_group), whose data may be BF16
// (the compute copy under bf16 precision) while gradients stay F32.
// Fixed tensors that belong to the state dict (sin-cos position table, Fourier W) are buffers:
// saved and loaded with the parameters but never optimized.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::nn {

constexpr int64_t kParamAlign = 64;  // elements: 256 bytes in F32

struct ParamInfo {
  std::string name;
  Shape shape;
  int group = 0;
  int64_t offset = 0;  // elements into the group's flat buffer
};

struct ParamGroup {
  std::string name;
  int64_t numel = 0;  // flat size, alignment holes included
  Tensor data, grad;  // flat (numel); grad F32, data F32 or the BF16 compute copy
  std::vector<int> params;
};

class ParamStore {
 public:
  // Declaration phase: params go into the current group.
  int begin_group(const std::string& name);
  // `packed` = true places the parameter right after the previous one of its group instead of at
  // the next aligned offset, so that adjacent parameters form one tensor in the flat buffer
  // (the decoder's query/key/value weights: one fused qkv GEMM operand, whatever the width).
  int add(const std::string& name, const Shape& shape, bool packed = false);
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

  int64_t num_params() const;  // trainable elements (holes excluded)
  void zero_grad();
  // Parameters and buffers by name (views into the flat buffers).
  std::map<std::string, Tensor> state_dict() const;
  // Copies every parameter and buffer from `tensors` (any float dtype is cast to F32). Names
  // missing from `tensors` or unknown names in it (when strict), a shape other than the
  // declared one, or an integer dtype are errors naming `source` and the tensor.
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
