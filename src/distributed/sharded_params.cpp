#include "distributed/sharded_params.h"

#include <functional>
#include <sstream>

#include "core/error.h"
#include "distributed/staged_work.h"
#include "ops/elementwise.h"

namespace rae::distributed {

namespace {

std::string mib(int64_t bytes) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  os << static_cast<double>(bytes) / 1048576.0 << " MiB";
  return os.str();
}

int64_t nbytes(const Tensor& t) {
  return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0;
}

}  // namespace

ShardedParams::ShardedParams(nn::Module& model, ShardGroups& groups, Device device,
                             const ShardingOptions& o)
    : model_(model), groups_(groups), device_(device), opts_(o) {
  RAE_CHECK(o.param_dtype == DType::F32 || o.param_dtype == DType::BF16,
            "sharding: parameters compute in f32 or bf16, not ", dtype_name(o.param_dtype));
  RAE_CHECK(o.param_dtype == DType::F32 || device.is_cuda(),
            "sharding: bf16 parameters need a CUDA device (the CPU computes in f32)");
  RAE_CHECK(o.comm_dtype == DType::F32 || o.comm_dtype == DType::BF16,
            "sharding: gradients travel in f32 or bf16, not ", dtype_name(o.comm_dtype));
  RAE_CHECK(groups.strategy == o.strategy, "sharding: groups for ", strategy_name(groups.strategy),
            ", options for ", strategy_name(o.strategy));
  nn::ParamStore& ps = model.params();
  RAE_CHECK(ps.allocated(), "sharding: the model's parameters are not allocated");
  std::vector<int64_t> numel;
  for (const auto& g : ps.groups()) numel.push_back(g.numel);
  plan_ = make_bucket_plan(numel, model.block_groups(), groups.shard_size(), o.bucket_numel);
  seg_.resize(plan_.segments.size());
  backward_serial_.assign(plan_.segments.size(), -1);

  const int r = shard_rank();
  const bool persistent_full = !frees();
  const bool f32_views = persistent_full && o.param_dtype == DType::F32;
  for (size_t s = 0; s < plan_.segments.size(); ++s) {
    const auto& sp = plan_.segments[s];
    const Tensor values = ps.groups()[sp.group].data;  // F32 (group numel), from init or a load
    RAE_CHECK(values.defined() && values.device() == device, "sharding: group '",
              ps.groups()[sp.group].name, "' is ", values.defined() ? values.str() : "unbound",
              ", expected f32 on ", device.str(), " (move the model there first)");
    SegmentState& st = seg_[s];
    if (persistent_full) {
      st.full = alloc(sp.numel, o.param_dtype, true);
      st.full.narrow(0, 0, values.numel())
          .copy_from(o.param_dtype == DType::F32 ? values : values.cast(o.param_dtype));
    }
    if (!sharded()) st.grad = alloc(sp.numel, DType::F32, true);
    if (sp.block < 0) root_segments_.push_back(static_cast<int>(s));
    for (int b = sp.first_bucket; b < sp.first_bucket + sp.num_buckets; ++b) {
      const auto& bk = plan_.buckets[b];
      const BucketPlan::Owned own = plan_.owned(b, r);
      Tensor master;
      if (f32_views) {
        master =
            st.full.narrow(0, bk.offset + static_cast<int64_t>(r) * bk.shard_numel, bk.shard_numel);
      } else {
        master = alloc(bk.shard_numel, DType::F32, true);
        if (own.count > 0)
          master.narrow(0, 0, own.count).copy_from(values.narrow(0, own.first, own.count));
      }
      master_.push_back(master);
      grad_shard_.push_back(sharded() ? alloc(bk.shard_numel, DType::F32, true)
                                      : st.grad.narrow(0, bk.offset, bk.padded));
      wire_param_.push_back(sharded() && o.param_dtype == DType::BF16 ? master.cast(DType::BF16)
                                                                      : Tensor());
      hold(nbytes(wire_param_.back()));
    }
    bind(static_cast<int>(s));
  }
  reset_peak();
  model.set_block_hooks(this);
}

ShardedParams::~ShardedParams() {
  model_.set_block_hooks(nullptr);
  try {
    drain();
  } catch (...) {  // a failed collective aborts the job through the watchdog anyway
  }
}

void ShardedParams::hold(int64_t bytes) {
  bytes_now_ += bytes;
  bytes_peak_ = std::max(bytes_peak_, bytes_now_);
}

Tensor ShardedParams::alloc(int64_t numel, DType dtype, bool zero) {
  Tensor t = zero ? Tensor::zeros({numel}, dtype, device_) : Tensor::empty({numel}, dtype, device_);
  hold(nbytes(t));
  return t;
}

void ShardedParams::bind(int s) {
  const auto& sp = plan_.segments[s];
  const int64_t n = model_.params().groups()[sp.group].numel;
  const SegmentState& st = seg_[s];
  model_.params().bind_group(sp.group, st.full.defined() ? st.full.narrow(0, 0, n) : Tensor(),
                             trainable_ && st.grad.defined() ? st.grad.narrow(0, 0, n) : Tensor());
}

Tensor ShardedParams::gather_input(int b) const {
  return wire_param_[b].defined() ? wire_param_[b] : master_[b];
}

// ---- parameters ----

void ShardedParams::gather(int s) {
  SegmentState& st = seg_[s];
  if (st.full.defined()) return;
  const auto& sp = plan_.segments[s];
  // Every element is written: the buckets tile the segment and shards carry their padding.
  st.full = alloc(sp.numel, opts_.param_dtype, false);
  st.gathers.clear();
  for (int b = sp.first_bucket; b < sp.first_bucket + sp.num_buckets; ++b) {
    const auto& bk = plan_.buckets[b];
    Tensor out = st.full.narrow(0, bk.offset, bk.padded);
    if (groups_.shard)
      st.gathers.push_back(groups_.shard->all_gather_async(gather_input(b), out));
    else
      out.copy_from(gather_input(b));
  }
  st.gathering = true;
}

void ShardedParams::wait_gathered(int s) {
  SegmentState& st = seg_[s];
  if (st.gathering) {
    for (Work& w : st.gathers) w.wait();
    st.gathers.clear();
    st.gathering = false;
  }
  bind(s);
}

void ShardedParams::release(int s) {
  SegmentState& st = seg_[s];
  if (!frees() || !st.full.defined()) return;
  RAE_CHECK(!st.gathering, "sharding: releasing a segment whose gather is in flight");
  hold(-nbytes(st.full));
  st.full = Tensor();
  bind(s);
}

void ShardedParams::publish() {
  drain();
  for (size_t s = 0; s < plan_.segments.size(); ++s) {
    const auto& sp = plan_.segments[s];
    SegmentState& st = seg_[s];
    std::vector<Work> works;
    for (int b = sp.first_bucket; b < sp.first_bucket + sp.num_buckets; ++b) {
      const auto& bk = plan_.buckets[b];
      if (wire_param_[b].defined()) wire_param_[b].copy_from(master_[b].cast(DType::BF16));
      if (frees()) continue;  // full_shard / hybrid_shard gather on use
      Tensor out = st.full.narrow(0, bk.offset, bk.padded);
      if (opts_.strategy == ShardStrategy::NoShard) {
        if (opts_.param_dtype != DType::F32) out.copy_from(master_[b].cast(opts_.param_dtype));
      } else if (groups_.shard) {  // shard_grad_op: F32 masters are this rank's chunk of `out`
        works.push_back(groups_.shard->all_gather_async(gather_input(b), out));
      } else if (wire_param_[b].defined()) {  // one shard: the bf16 copy is the whole bucket
        out.copy_from(wire_param_[b]);
      }  // (one shard in F32: the master is `out` itself)
    }
    for (Work& w : works) w.wait();
  }
}

// ---- gradients ----

void ShardedParams::set_trainable(bool trainable) {
  trainable_ = trainable;
  for (size_t s = 0; s < seg_.size(); ++s) bind(static_cast<int>(s));
  if (trainable)
    for (int s : root_segments_) bind_fresh_grad(s);  // roots frozen since begin_micro_batch
}

void ShardedParams::bind_fresh_grad(int s) {
  if (!sharded() || !trainable_) return;  // no_shard: the persistent buffer accumulates
  SegmentState& st = seg_[s];
  if (!st.grad.defined()) st.grad = alloc(plan_.segments[s].numel, DType::F32, true);
  bind(s);
}

// Issues the reduction of segment s's gradient buffer (Sum over ranks) into the owned shards.
void ShardedParams::reduce(int s) {
  const auto& sp = plan_.segments[s];
  SegmentState& st = seg_[s];
  Reduction red;
  red.segment = s;
  const bool bf16 = opts_.comm_dtype == DType::BF16;
  const bool accumulate = micro_ > 0;
  // A root segment frozen for the whole micro-batch contributes zeros (the collectives of every
  // rank still match).
  if (!st.grad.defined()) st.grad = alloc(sp.numel, DType::F32, true);
  for (int b = sp.first_bucket; b < sp.first_bucket + sp.num_buckets; ++b) {
    const auto& bk = plan_.buckets[b];
    Tensor g = st.grad.narrow(0, bk.offset, bk.padded);
    Communicator* shard = groups_.shard;
    Communicator* replicate = groups_.replicate;
    if (!sharded()) {  // no_shard: all-reduce in place (bf16 on the wire: a copy, cast back)
      if (!replicate) continue;
      Tensor wire = bf16 ? g.cast(DType::BF16) : g;
      red.bytes += bf16 ? nbytes(wire) : 0;
      std::function<void()> finish;
      if (bf16) finish = [g, wire]() mutable { g.copy_from(wire.cast(DType::F32)); };
      red.works.emplace_back(
          std::make_shared<StagedWork>(std::vector<std::function<Work()>>{[replicate, wire] {
                                         return replicate->all_reduce_async(wire, ReduceOp::Sum);
                                       }},
                                       std::move(finish)));
      continue;
    }
    Tensor dst = grad_shard_[b];
    Tensor wire_in = bf16 ? g.cast(DType::BF16) : g;
    const bool direct = !bf16 && !accumulate;
    Tensor out = direct ? dst : Tensor::empty({bk.shard_numel}, opts_.comm_dtype, device_);
    red.bytes += (bf16 ? nbytes(wire_in) : 0) + (direct ? 0 : nbytes(out));
    std::vector<std::function<Work()>> stages;
    if (shard) {
      stages.push_back([shard, wire_in, out] {
        return shard->reduce_scatter_async(wire_in, out, ReduceOp::Sum);
      });
    } else {
      stages.push_back([wire_in, out]() mutable {
        out.copy_from(wire_in);
        return Work();
      });
    }
    if (replicate)
      stages.push_back(
          [replicate, out] { return replicate->all_reduce_async(out, ReduceOp::Sum); });
    std::function<void()> finish = [dst, out, direct, accumulate]() mutable {
      if (direct) return;
      Tensor result = out.dtype() == DType::F32 ? out : out.cast(DType::F32);
      if (accumulate)
        ops::add_(dst, result);
      else
        dst.copy_from(result);
    };
    red.works.emplace_back(std::make_shared<StagedWork>(std::move(stages), std::move(finish)));
  }
  hold(red.bytes);
  if (sharded()) {
    // The buffer lives on in the reduction's stages; the model no longer sees it.
    red.bytes += nbytes(st.grad);
    st.grad = Tensor();
    bind(s);
  }
  pending_.push_back(std::move(red));
}

void ShardedParams::complete_oldest() {
  Reduction& r = pending_.front();
  for (Work& w : r.works) w.wait();
  hold(-r.bytes);
  pending_.pop_front();
}

void ShardedParams::drain() {
  while (!pending_.empty()) complete_oldest();
}

void ShardedParams::progress() {
  for (SegmentState& st : seg_)
    for (Work& w : st.gathers) w.test();
  // Reductions strictly in issue order: testing a staged reduction may issue its next stage
  // (hybrid's all-reduce across nodes), and every rank must issue those in the same order, so a
  // later reduction is not advanced before all earlier ones are complete.
  for (Reduction& r : pending_)
    for (Work& w : r.works)
      if (!w.test()) return;
}

void ShardedParams::begin_micro_batch(int micro, int num_micro) {
  RAE_CHECK(num_micro >= 1 && micro >= 0 && micro < num_micro, "sharding: micro-batch ", micro,
            " of ", num_micro);
  micro_ = micro;
  num_micro_ = num_micro;
  ++micro_serial_;
  if (micro == 0) {
    drain();
    for (Tensor& g : grad_shard_) g.zero_();  // no_shard: views of the persistent gradients
  }
  for (int s : root_segments_) {
    if (frees()) gather(s);
    bind_fresh_grad(s);
  }
  if (frees() && !plan_.block_segments.empty()) gather(plan_.block_segments.front());
  for (int s : root_segments_) wait_gathered(s);
}

void ShardedParams::end_micro_batch() {
  if (sharded() || last_micro())
    for (int s : root_segments_) reduce(s);
  drain();
}

void ShardedParams::finish_gradients() {
  drain();
  for (size_t s = 0; s < seg_.size(); ++s) {
    if (seg_[s].gathering) wait_gathered(static_cast<int>(s));
    release(static_cast<int>(s));
  }
}

double ShardedParams::grad_sum_squares() {
  double local = 0;
  for (const Tensor& g : grad_shard_) local += ops::sum_squares(g);
  if (!groups_.shard) return local;
  Tensor t = Tensor::full({1}, local, DType::F64).to(groups_.shard->device());
  groups_.shard->all_reduce_async(t, ReduceOp::Sum).synchronize();
  return t.to(Device::cpu()).item(0);
}

// ---- hooks ----

void ShardedParams::before_forward(int k) {
  progress();
  const int s = plan_.block_segments.at(k);
  if (frees()) {
    gather(s);
    if (k + 1 < static_cast<int>(plan_.block_segments.size()))
      gather(plan_.block_segments[k + 1]);  // prefetch: overlaps block k's compute
  }
  wait_gathered(s);
}

void ShardedParams::after_forward(int k) {
  // The last block stays gathered: backward starts with it.
  if (k + 1 < static_cast<int>(plan_.block_segments.size())) release(plan_.block_segments[k]);
  progress();
}

void ShardedParams::before_backward(int k) {
  progress();
  const int s = plan_.block_segments.at(k);
  if (frees()) {
    gather(s);
    if (k > 0) gather(plan_.block_segments[k - 1]);
  }
  wait_gathered(s);
  if (trainable_) {
    RAE_CHECK(backward_serial_[s] != micro_serial_, "model '", model_.type(), "': block ", k,
              " runs a second backward in one micro-batch while trainable; sum the losses into "
              "one backward (or freeze the model with set_trainable(false))");
    backward_serial_[s] = micro_serial_;
  }
  bind_fresh_grad(s);
}

void ShardedParams::after_backward(int k) {
  const int s = plan_.block_segments.at(k);
  release(s);
  if (trainable_ && (sharded() || last_micro())) {
    reduce(s);
    // One reduction stays in flight behind the next block's backward.
    while (pending_.size() > 1) complete_oldest();
  }
  progress();
}

std::vector<Tensor> ShardedParams::gather_groups(const std::vector<Tensor>& shards) const {
  RAE_CHECK(shards.size() == plan_.buckets.size(), "gather_groups: ", shards.size(), " shards for ",
            plan_.buckets.size(), " buckets");
  const auto& groups = model_.params().groups();
  std::vector<Tensor> out(groups.size());
  for (const auto& sp : plan_.segments) {
    Tensor full = Tensor::empty({sp.numel}, DType::F32, device_);
    for (int b = sp.first_bucket; b < sp.first_bucket + sp.num_buckets; ++b) {
      const auto& bk = plan_.buckets[b];
      Tensor dst = full.narrow(0, bk.offset, bk.padded);
      if (groups_.shard)
        groups_.shard->all_gather_async(shards[b], dst).wait();
      else
        dst.copy_from(shards[b]);
    }
    out[sp.group] = full.narrow(0, 0, groups[sp.group].numel);
  }
  return out;
}

// ---- checkpoints and reports ----

std::vector<ShardedParams::Piece> ShardedParams::pieces(int r) const {
  std::vector<Piece> out;
  const nn::ParamStore& ps = model_.params();
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const BucketPlan::Owned own = plan_.owned(static_cast<int>(b), r);
    if (own.count == 0) continue;
    const int group = plan_.segments[plan_.buckets[b].segment].group;
    for (int id : ps.groups()[group].params) {
      const nn::ParamInfo& p = ps.params()[id];
      const int64_t lo = std::max(own.first, p.offset);
      const int64_t hi = std::min(own.first + own.count, p.offset + p.shape.numel());
      if (lo < hi)
        out.push_back({id, lo - p.offset, hi - p.offset, static_cast<int>(b), lo - own.first});
    }
  }
  return out;
}

std::string ShardedParams::describe() const {
  std::ostringstream os;
  os << strategy_name(opts_.strategy) << " over " << shard_count() << " shard(s)";
  if (groups_.replicate) os << " x " << groups_.replicate->size() << " replica(s)";
  os << ", " << plan_.segments.size() << " segments in " << plan_.buckets.size()
     << " buckets (at most " << opts_.bucket_numel << " elements), parameters in "
     << dtype_name(opts_.param_dtype) << ", gradients on the wire in "
     << dtype_name(opts_.comm_dtype) << ", persistent params+grads " << mib(bytes_now_);
  return os.str();
}

}  // namespace rae::distributed
