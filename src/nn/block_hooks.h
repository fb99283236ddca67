// Per-block hooks around each transformer block's forward and backward, so that a distributed
// layer can gather a block's parameters just before use and release them after (ZeRO-3), or
// reduce a block's gradients as soon as its backward is done (ZeRO-2/3), overlapping the
// collectives of one block with the compute of its neighbours. Blocks are numbered in forward
// order (body then head); backward visits them in reverse. The defaults do nothing.
#pragma once

namespace rae::nn {

class BlockHooks {
 public:
  virtual ~BlockHooks() = default;
  virtual void before_forward(int /*block*/) {}
  virtual void after_forward(int /*block*/) {}
  virtual void before_backward(int /*block*/) {}
  virtual void after_backward(int /*block*/) {}
};

}  // namespace rae::nn
