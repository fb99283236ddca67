// A trainable model as the trainer, the sharding core, checkpoints and export see it:
//   - type() and config(): the registry name and the JSON that rebuild it
//     (models/registry.h: build_model({type(), config()}) declares the same tensors);
//   - params(): named parameters (trainable; flat F32 buffers per group) and buffers (fixed
//     tensors of the state dict, e.g. position tables), saved and loaded by name;
//   - init(seed): every parameter and buffer from the counter RNG (host memory);
//   - block_groups(): the parameter groups that are repeated blocks, in forward order. Whoever
//     owns the parameters (the sharding core, distributed/sharded_params.h) installs BlockHooks;
//     the model calls them around each block's forward and backward. The other ("root") groups
//     are used before the first and after the last block and need no hooks.
// How a model is run (forward/backward on an arena, the inputs it takes) is the business of its
// family's interface, e.g. models::Denoiser (x_t, t, y -> velocity); an objective
// (train/objective.h) knows which interface it drives.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/block_hooks.h"
#include "nn/params.h"

namespace rae::nn {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual std::string type() const = 0;
  virtual nlohmann::json config() const = 0;
  ParamStore& params() { return ps_; }
  const ParamStore& params() const { return ps_; }
  virtual void init(uint64_t seed) = 0;
  // Moves parameters, buffers and derived tables (e.g. RoPE) to `device`.
  virtual void to(Device device) = 0;
  virtual std::vector<int> block_groups() const = 0;
  // Not owned; null: none. The hooks see block indices 0..block_groups().size()-1.
  void set_block_hooks(BlockHooks* hooks) { hooks_ = hooks; }
  // "DiTDH-S: 130.9M parameters (...)", for logs.
  virtual std::string summary() const;

 protected:
  // Runs `body` between the hooks of block `k` (forward or backward).
  template <class F>
  void forward_block(int k, F&& body) {
    if (hooks_) hooks_->before_forward(k);
    body();
    if (hooks_) hooks_->after_forward(k);
  }
  template <class F>
  void backward_block(int k, F&& body) {
    if (hooks_) hooks_->before_backward(k);
    body();
    if (hooks_) hooks_->after_backward(k);
  }

  ParamStore ps_;
  BlockHooks* hooks_ = nullptr;
};

// "838.9M".
std::string format_count(int64_t n);

}  // namespace rae::nn
