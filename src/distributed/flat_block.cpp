// FlatParamBlock and ShardedModel (declared in flat_shard.h).
#include <algorithm>
#include <atomic>

#include "core/error.h"
#include "distributed/flat_shard.h"
#include "distributed/staged_work.h"

namespace rae::distributed {

#ifdef RAE_WITH_CUDA
namespace cuda_kernels {
void accumulate_f32(float* dst, const float* src, int64_t n);  // distributed/cuda/flat_kernels.cu
}
#endif

namespace {

// dst += src, F32, same device.
void accumulate(const Tensor& dst, const Tensor& src) {
  RAE_CHECK(dst.numel() == src.numel() && dst.dtype() == DType::F32 && src.dtype() == DType::F32,
            "accumulate: ", dst.str(), " += ", src.str());
  if (dst.is_cuda()) {
#ifdef RAE_WITH_CUDA
    cuda_kernels::accumulate_f32(dst.data<float>(), src.data<float>(), dst.numel());
    return;
#endif
  }
  float* d = dst.data<float>();
  const float* s = src.data<float>();
  for (int64_t i = 0, n = dst.numel(); i < n; ++i) d[i] += s[i];
}

bool sharded(ShardStrategy s) {
  return s != ShardStrategy::NoShard;
}
bool frees_params(ShardStrategy s) {
  return s == ShardStrategy::FullShard || s == ShardStrategy::HybridShard;
}

}  // namespace

FlatParamBlock::FlatParamBlock(FlatLayout layout, ShardGroups& groups, Device device,
                               DType comm_dtype)
    : layout_(std::move(layout)), groups_(&groups), device_(device), comm_dtype_(comm_dtype) {
  RAE_CHECK(comm_dtype == DType::F32 || comm_dtype == DType::BF16,
            "gradient communication dtype must be f32 or bf16, got ", dtype_name(comm_dtype));
  RAE_CHECK(layout_.shards == groups.shard_size(), "flat layout has ", layout_.shards,
            " shards but the shard group has ", groups.shard_size(), " ranks");
  const int64_t sn = layout_.shard_numel();
  switch (strategy()) {
    case ShardStrategy::NoShard:
      full_ = alloc(layout_.padded_numel);
      shard_ = full_;
      grad_full_ = alloc(layout_.padded_numel);
      grad_shard_ = grad_full_;
      break;
    case ShardStrategy::ShardGradOp:
      full_ = alloc(layout_.padded_numel);
      shard_ = full_.narrow(0, layout_.shard_begin(groups.shard_rank()), sn);
      grad_shard_ = alloc(sn);
      break;
    case ShardStrategy::FullShard:
    case ShardStrategy::HybridShard:
      shard_ = alloc(sn);
      grad_shard_ = alloc(sn);
      break;
  }
  if (full_.defined()) full_.zero_();
  shard_.zero_();
  grad_shard_.zero_();
}

FlatParamBlock::~FlatParamBlock() {
  free_tracked(shard_);  // views are dropped uncounted
  free_tracked(grad_shard_);
  free_tracked(full_);
  free_tracked(grad_full_);
}

Tensor FlatParamBlock::alloc(int64_t numel, DType dtype) {
  Tensor t = Tensor::empty({numel}, dtype, device_);
  track_sharded_bytes(static_cast<int64_t>(t.nbytes()));
  return t;
}

// Releases a tracked buffer (views of another buffer are dropped without counting).
void FlatParamBlock::free_tracked(Tensor& t) {
  if (!t.defined()) return;
  bool is_view = (strategy() == ShardStrategy::ShardGradOp && &t == &shard_) ||
                 (strategy() == ShardStrategy::NoShard && (&t == &shard_ || &t == &grad_shard_));
  if (!is_view) track_sharded_bytes(-static_cast<int64_t>(t.nbytes()));
  t = Tensor();
}

const Tensor& FlatParamBlock::full() const {
  RAE_CHECK(full_.defined(), "block parameters are not gathered (call gather_async first)");
  return full_;
}

const Tensor& FlatParamBlock::grad_full() const {
  RAE_CHECK(grad_full_.defined(), "block gradients are not allocated (call begin_backward)");
  return grad_full_;
}

Tensor FlatParamBlock::param(int i) const {
  const auto& e = layout_.entries.at(i);
  return full().narrow(0, e.offset, e.numel).view(e.shape);
}

Tensor FlatParamBlock::grad(int i) const {
  const auto& e = layout_.entries.at(i);
  return grad_full().narrow(0, e.offset, e.numel).view(e.shape);
}

void FlatParamBlock::load_full(const Tensor& full_values) {
  Tensor src = full_values.flatten();
  RAE_CHECK(src.dtype() == DType::F32, "load_full: values must be f32, got ", src.str());
  RAE_CHECK(src.numel() == layout_.used_numel || src.numel() == layout_.padded_numel,
            "load_full: ", src.numel(), " values for a block of ", layout_.used_numel, " (padded ",
            layout_.padded_numel, ")");
  auto copy_range = [&](Tensor dst, int64_t begin) {
    // dst receives src[begin, begin + dst.numel()), zero past the end of src.
    dst.zero_();
    int64_t n = std::min<int64_t>(dst.numel(), std::max<int64_t>(0, src.numel() - begin));
    if (n > 0) dst.narrow(0, 0, n).copy_from(src.narrow(0, begin, n));
  };
  if (full_.defined() && !frees_params(strategy())) {
    copy_range(full_, 0);  // no_shard / shard_grad_op: shard_ is part of full_
  } else {
    copy_range(shard_, layout_.shard_begin(groups_->shard_rank()));
  }
}

Work FlatParamBlock::gather_async() {
  if (!frees_params(strategy()) || full_.defined()) return Work();
  full_ = alloc(layout_.padded_numel);
  if (!groups_->shard) {
    full_.copy_from(shard_);
    return Work();
  }
  return groups_->shard->all_gather_async(shard_, full_);
}

void FlatParamBlock::release() {
  if (frees_params(strategy())) free_tracked(full_);
}

void FlatParamBlock::begin_backward() {
  if (!grad_full_.defined()) grad_full_ = alloc(layout_.padded_numel);
  grad_full_.zero_();
}

Work FlatParamBlock::reduce_grads_async(bool accumulate_into_shard) {
  RAE_CHECK(grad_full_.defined(), "reduce_grads_async before begin_backward");
  const bool bf16 = comm_dtype_ == DType::BF16;
  Communicator* shard_comm = groups_->shard;
  Communicator* replicate = groups_->replicate;

  if (strategy() == ShardStrategy::NoShard) {
    if (!replicate) return Work();
    Tensor wire = bf16 ? grad_full_.cast(DType::BF16) : grad_full_;
    if (bf16) track_sharded_bytes(static_cast<int64_t>(wire.nbytes()));
    std::vector<std::function<Work()>> stages = {
        [replicate, wire] { return replicate->all_reduce_async(wire, ReduceOp::Avg); }};
    std::function<void()> finish;
    if (bf16) {
      finish = [dst = grad_full_, wire]() mutable {
        dst.copy_from(wire.cast(DType::F32));
        track_sharded_bytes(-static_cast<int64_t>(wire.nbytes()));
      };
    }
    return Work(std::make_shared<StagedWork>(std::move(stages), std::move(finish)));
  }

  // Sharded: reduce-scatter over the shard group (avg), then all-reduce across replicas (avg).
  Tensor wire_in = bf16 ? grad_full_.cast(DType::BF16) : grad_full_;
  const bool direct = !bf16 && !accumulate_into_shard;
  Tensor wire_out =
      direct ? grad_shard_ : Tensor::empty({layout_.shard_numel()}, comm_dtype_, device_);
  int64_t staging = (bf16 ? static_cast<int64_t>(wire_in.nbytes()) : 0) +
                    (direct ? 0 : static_cast<int64_t>(wire_out.nbytes()));
  track_sharded_bytes(staging);
  std::vector<std::function<Work()>> stages;
  if (shard_comm) {
    stages.push_back([shard_comm, wire_in, wire_out] {
      return shard_comm->reduce_scatter_async(wire_in, wire_out, ReduceOp::Avg);
    });
  } else {
    stages.push_back([wire_in, wire_out]() mutable {
      wire_out.copy_from(wire_in);
      return Work();
    });
  }
  if (replicate) {
    stages.push_back(
        [replicate, wire_out] { return replicate->all_reduce_async(wire_out, ReduceOp::Avg); });
  }
  std::function<void()> finish = [dst = grad_shard_, wire_in, wire_out, direct,
                                  accumulate_into_shard, staging]() mutable {
    if (!direct) {
      Tensor result = wire_out.dtype() == DType::F32 ? wire_out : wire_out.cast(DType::F32);
      if (accumulate_into_shard) {
        accumulate(dst, result);
      } else {
        dst.copy_from(result);
      }
    }
    wire_in = Tensor();
    wire_out = Tensor();
    track_sharded_bytes(-staging);
  };
  return Work(std::make_shared<StagedWork>(std::move(stages), std::move(finish)));
}

void FlatParamBlock::release_grads() {
  if (sharded(strategy())) free_tracked(grad_full_);
}

Work FlatParamBlock::after_step_async() {
  if (strategy() != ShardStrategy::ShardGradOp || !groups_->shard) return Work();
  return groups_->shard->all_gather_async(shard_, full_);  // in place: shard_ is my chunk
}

// ---- ShardedModel ----

ShardedModel::ShardedModel(const std::vector<FlatLayout>& layouts, ShardGroups& groups,
                           Device device, DType comm_dtype, bool prefetch)
    : prefetch_(prefetch) {
  for (const FlatLayout& l : layouts)
    blocks_.push_back(std::make_unique<FlatParamBlock>(l, groups, device, comm_dtype));
  gathers_.resize(blocks_.size());
  reductions_.resize(blocks_.size());
}

void ShardedModel::begin_micro_batch(int micro, int num_micro) {
  RAE_CHECK(num_micro >= 1 && micro >= 0 && micro < num_micro, "micro-batch ", micro, " of ",
            num_micro);
  micro_ = micro;
  num_micro_ = num_micro;
}

void ShardedModel::ensure_gather(int i) {
  if (!blocks_[i]->gathered()) gathers_[i] = blocks_[i]->gather_async();
}

void ShardedModel::wait_gather(int i) {
  ensure_gather(i);
  gathers_[i].wait();
  gathers_[i] = Work();
}

void ShardedModel::pre_forward(int i) {
  ensure_gather(i);
  if (prefetch_ && i + 1 < num_blocks()) ensure_gather(i + 1);
  wait_gather(i);
}

void ShardedModel::post_forward(int i) {
  if (i != num_blocks() - 1) blocks_[i]->release();  // backward starts with the last block
}

void ShardedModel::pre_backward(int i) {
  // The previous micro-batch's last reductions overlapped this micro-batch's forward; they must
  // end before backward reuses the gradient buffers (and to bound memory to two blocks).
  if (i == num_blocks() - 1) drain_reductions();
  ensure_gather(i);
  if (prefetch_ && i > 0) ensure_gather(i - 1);
  wait_gather(i);
  FlatParamBlock& b = *blocks_[i];
  // no_shard keeps accumulating in its persistent buffer over micro-batches.
  if (b.strategy() != ShardStrategy::NoShard || micro_ == 0) b.begin_backward();
}

void ShardedModel::post_backward(int i) {
  FlatParamBlock& b = *blocks_[i];
  b.release();
  const bool last_micro = micro_ == num_micro_ - 1;
  if (b.strategy() == ShardStrategy::NoShard) {
    if (last_micro) reductions_[i] = b.reduce_grads_async(false);
  } else {
    reductions_[i] = b.reduce_grads_async(/*accumulate_into_shard=*/micro_ > 0);
  }
  // One reduction stays in flight behind the backward compute: the previous block's is waited
  // for here and its gradient buffer freed (bounds memory to two blocks of gradients).
  if (i + 1 < num_blocks() && reductions_[i + 1].valid()) {
    reductions_[i + 1].wait();
    reductions_[i + 1] = Work();
    blocks_[i + 1]->release_grads();
  }
}

void ShardedModel::finish_backward() {
  drain_reductions();
}

void ShardedModel::drain_reductions() {
  for (int i = num_blocks() - 1; i >= 0; --i) {
    if (!reductions_[i].valid()) continue;
    reductions_[i].wait();
    reductions_[i] = Work();
    blocks_[i]->release_grads();
  }
}

void ShardedModel::after_step() {
  std::vector<Work> works;
  for (auto& b : blocks_) works.push_back(b->after_step_async());
  for (Work& w : works) w.wait();
}

}  // namespace rae::distributed
