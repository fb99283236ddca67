#include "train/graph_step.h"

#include <cmath>

#include "core/error.h"
#include "distributed/sharded_params.h"
#include "ops/step_scalars.h"
#include "train/optimizer.h"
#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_memory.h"
#endif

namespace rae::train {

#ifdef RAE_WITH_CUDA
namespace {
void cuda_ok(cudaError_t e, const char* what) {
  RAE_CHECK(e == cudaSuccess, "train.cuda_graph: ", what, ": ", cudaGetErrorString(e));
}
}  // namespace

struct GraphStep::Cuda {
  cudaStream_t stream = nullptr;  // non-blocking: ordered against the eager work by `ready`
  cudaEvent_t ready = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int pool = 0;  // the caching allocator's pool of the graph's blocks
};
#else
struct GraphStep::Cuda {};
#endif

GraphStep::GraphStep(Objective& objective, TrainedModel& model, Device device)
    : objective_(objective), model_(model), device_(device) {
  RAE_CHECK(objective.supports_graph(), "train.cuda_graph: the objective '", objective.name(),
            "' cannot run its step as a CUDA graph");
  scalars_ = Tensor::zeros({ops::kStepScalarCount}, DType::F64, device);
  host_scalars_ = Tensor::zeros({ops::kStepScalarCount}, DType::F64);
  cuda_ = std::make_unique<Cuda>();
#ifdef RAE_WITH_CUDA
  if (device.is_cuda()) {
    cuda_ok(cudaStreamCreateWithFlags(&cuda_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda_ok(cudaEventCreateWithFlags(&cuda_->ready, cudaEventDisableTiming), "cudaEventCreate");
  }
#endif
}

GraphStep::~GraphStep() {
  destroy();
}

void GraphStep::destroy() {
#ifdef RAE_WITH_CUDA
  if (!cuda_) return;
  if (cuda_->exec) cudaGraphExecDestroy(cuda_->exec);
  if (cuda_->graph) cudaGraphDestroy(cuda_->graph);
  cuda_->exec = nullptr, cuda_->graph = nullptr;
  if (cuda_->pool) cuda_memory::release_graph_pool(cuda_->pool);
  cuda_->pool = 0;
  if (cuda_->ready) cudaEventDestroy(cuda_->ready);
  if (cuda_->stream) cudaStreamDestroy(cuda_->stream);
  cuda_->ready = nullptr, cuda_->stream = nullptr;
#endif
}

void GraphStep::body(const MicroBatch& mb, double clip_grad) {
  distributed::ShardedParams& sp = *model_.params;
  sp.begin_micro_batch(0, 1);
  objective_.graph_compute(mb, scalars_);
  sp.end_micro_batch();
  sp.finish_gradients();
  for (const Tensor& g : sp.grads()) ops::sum_squares_acc(scalars_, g);
  ops::step_control(scalars_, clip_grad);
  model_.optimizer->step_scalars(scalars_);
  sp.publish();
}

void GraphStep::capture(const MicroBatch& mb, double clip_grad) {
#ifdef RAE_WITH_CUDA
  Cuda& c = *cuda_;
  cuda_memory::set_stream(c.stream);
  c.pool = cuda_memory::begin_graph_pool();
  auto undo = [&] {
    cuda_memory::set_stream(nullptr);
    cuda_memory::end_graph_pool();
  };
  // Relaxed: the caching allocator may still call cudaMalloc for a block it has not cached.
  cudaError_t e = cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    undo();
    cuda_ok(e, "cudaStreamBeginCapture");
  }
  try {
    body(mb, clip_grad);
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(c.stream, &g);
    if (g) cudaGraphDestroy(g);
    (void)cudaGetLastError();
    undo();
    throw;
  }
  e = cudaStreamEndCapture(c.stream, &c.graph);
  undo();
  cuda_ok(e, "cudaStreamEndCapture (an op in the step cannot be captured)");
  cuda_ok(cudaGraphInstantiate(&c.exec, c.graph, 0), "cudaGraphInstantiate");
  ++captures_;
#else
  (void)mb, (void)clip_grad;
#endif
}

GraphStep::Result GraphStep::run(const MicroBatch& mb, double lr, double clip_grad) {
  objective_.graph_prepare(mb);
  const ops::AdamWParams p = model_.optimizer->next_params(lr);
  ops::fill_adamw_scalars(host_scalars_.data<double>(), p);
  scalars_.copy_from(host_scalars_);
  if (device_.is_cuda()) {
#ifdef RAE_WITH_CUDA
    Cuda& c = *cuda_;
    if (!c.exec) capture(mb, clip_grad);  // records the work; nothing has run yet
    cuda_ok(cudaEventRecord(c.ready, nullptr), "cudaEventRecord");  // the eager part above
    cuda_ok(cudaStreamWaitEvent(c.stream, c.ready, 0), "cudaStreamWaitEvent");
    cuda_ok(cudaGraphLaunch(c.exec, c.stream), "cudaGraphLaunch");
    cuda_ok(cudaStreamSynchronize(c.stream), "the step's graph");
    ++replays_;
#endif
  } else {
    body(mb, clip_grad);  // the CPU: the same work, run directly
  }
  host_scalars_.copy_from(scalars_);
  const double* s = host_scalars_.data<double>();
  Result r;
  r.loss = s[ops::kLoss];
  r.grad_norm = std::sqrt(s[ops::kGradSumSq]);
  r.skipped = s[ops::kSkip] != 0;
  if (!r.skipped) model_.optimizer->set_step_count(p.step);
  return r;
}

}  // namespace rae::train
