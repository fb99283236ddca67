// train.cuda_graph: the training step as one CUDA graph, replayed every step once the shapes are
// fixed, so the GPU runs the forward, the backward, the loss and gradient-norm reductions, the
// clip, AdamW, EMA and the bf16 refresh back to back with no launch gaps and no host round trip.
//
// Per step:
//   eager   Objective::graph_prepare: the batch uploaded, the step's random draws (whatever
//           depends on host values) into tensors at fixed addresses; the per-step AdamW values
//           (lr, step, bias corrections) into the step scalars (ops/step_scalars.h)
//   graph   ShardedParams::begin_micro_batch (gradients zeroed), Objective::graph_compute
//           (forward, loss into scalars[kLoss], backward), the gradients' sum of squares, the clip
//           coefficient and the skip flag (non-finite loss or norm), AdamW + EMA from the scalars
//           (nothing when skipped), ShardedParams::publish (bf16 shadows)
//   host    the loss, norm and skip flag read back; the AdamW step count advanced unless skipped
// The same values as Trainer's eager step (ops/step_scalars.h computes them the same way): on the
// CPU, where the graph part simply runs, bit for bit (tests/train/test_graph_step.cpp).
//
// Capture: the first step of a Trainer runs eagerly (cuBLAS and cuDNN choose their algorithms,
// the arena and the caching allocator reach their sizes); the second captures the graph part on
// a stream of its own (every op launches on cuda_memory::stream(), tensor/cuda_stream.cuh),
// with the caching allocator in a private graph pool so that no address the graph uses is
// handed out to anything else while the graph lives; that step then launches it, and later steps
// replay it. Limits: one process (no collectives in the graph), one model, no gradient
// accumulation, an objective that supports_graph(); the trainer refuses other set-ups.
#pragma once
#include <cstdint>
#include <memory>

#include "train/objective.h"

namespace rae::train {

class GraphStep {
 public:
  GraphStep(Objective& objective, TrainedModel& model, Device device);
  ~GraphStep();
  GraphStep(const GraphStep&) = delete;
  GraphStep& operator=(const GraphStep&) = delete;

  struct Result {
    double loss = 0, grad_norm = 0;
    bool skipped = false;  // non-finite loss or norm: no update was made
  };
  // One step of micro-batch `mb` at learning rate `lr`, clipping at `clip_grad` (<= 0: none).
  Result run(const MicroBatch& mb, double lr, double clip_grad);

  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }

 private:
  void body(const MicroBatch& mb, double clip_grad);  // the graph part
  void capture(const MicroBatch& mb, double clip_grad);
  void destroy();

  Objective& objective_;
  TrainedModel& model_;
  Device device_;
  Tensor scalars_;       // (kStepScalarCount) F64 on the device
  Tensor host_scalars_;  // the same on the host
  int64_t captures_ = 0, replays_ = 0;
  struct Cuda;
  std::unique_ptr<Cuda> cuda_;
};

}  // namespace rae::train
