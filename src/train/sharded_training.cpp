#include "train/sharded_training.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "distributed/consistency.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "ops/elementwise.h"
#include "ops/optim.h"
#include "train/optimizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rae::train {

namespace {

constexpr const char* kShardedFormat = "rae-sharded-checkpoint";

std::string shard_file(int k, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "shard-%05d-of-%05d.safetensors", k, n);
  return buf;
}

std::string hex64(uint64_t v) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(v));
  return hex;
}

std::string mib(double bytes) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  os << bytes / 1048576.0 << " MiB";
  return os.str();
}

// [begin, end) of shard k of a group of `numel` elements split into `shards` equal (padded) parts.
std::pair<int64_t, int64_t> shard_range(int64_t numel, int shards, int k) {
  const int64_t sn = (numel + shards - 1) / shards;
  const int64_t b = std::min<int64_t>(numel, k * sn), e = std::min<int64_t>(numel, (k + 1) * sn);
  return {b, e};
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  RAE_CHECK(in.good(), "cannot read ", p.string());
  return json::parse(in);
}

RunState state_from_json(const json& s) {
  RunState st;
  st.step = s.at("step").get<int64_t>();
  st.samples_seen = s.at("samples_seen").get<int64_t>();
  st.adam_step = s.at("adam_step").get<int64_t>();
  st.bad_in_row = s.at("bad_in_row").get<int64_t>();
  st.skipped_total = s.at("skipped_total").get<int64_t>();
  st.seed = s.at("seed").get<uint64_t>();
  st.preset = s.at("preset").get<std::string>();
  st.data = s.at("data");
  if (s.contains("model_config")) st.model_config = s.at("model_config").get<std::string>();
  return st;
}

}  // namespace

ShardedTraining::ShardedTraining(distributed::Communicator& world, const ShardOptions& opts,
                                 const TrainConfig& cfg)
    : world_(world), opts_(opts), cfg_(cfg) {
  RAE_CHECK(opts.comm_dtype == DType::F32 || opts.comm_dtype == DType::BF16,
            "--dist.comm_dtype must be fp32 or bf16");
  groups_ = distributed::ShardGroups::make(&world, opts.strategy);
}

ShardedTraining::~ShardedTraining() = default;

void ShardedTraining::attach(const nn::ParamStore& ps) {
  if (attached_) return;
  const int S = shards(), r = shard_rank();
  for (const auto& pg : ps.groups()) {
    Group g;
    g.name = pg.name;
    g.numel = pg.numel;
    g.shard_numel = (pg.numel + S - 1) / S;
    g.padded = g.shard_numel * S;
    std::tie(g.begin, g.end) = shard_range(pg.numel, S, r);
    const Device d = pg.data.device();
    g.grad_shard = S == 1 ? Tensor() : Tensor::zeros({g.shard_numel}, DType::F32, d);
    g.m = Tensor::zeros({g.shard_numel}, DType::F32, d);
    g.v = Tensor::zeros({g.shard_numel}, DType::F32, d);
    g.ema = Tensor::zeros({g.shard_numel}, DType::F32, d);
    // The EMA starts as a copy of the initial parameters (as the single-process trainer's).
    if (g.end > g.begin)
      g.ema.narrow(0, 0, g.end - g.begin).copy_from(pg.data.narrow(0, g.begin, g.end - g.begin));
    // Accounting: full parameters and gradients in the model, plus the gradient shard.
    hold(8 * pg.numel + (g.grad_shard.defined() ? 4 * g.shard_numel : 0));
    g_.push_back(std::move(g));
  }
  attached_ = true;
}

void ShardedTraining::hold(int64_t bytes) {
  held_bytes_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, held_bytes_);
}

Tensor ShardedTraining::owned_param(const nn::ParamStore& ps, size_t i) const {
  const Group& g = g_[i];
  if (g.sharded_params) return g.param_shard.narrow(0, 0, g.end - g.begin);
  return ps.groups()[i].data.narrow(0, g.begin, g.end - g.begin);
}

// ---- ZeRO-2/3 block hooks ----

nn::BlockHooks* ShardedTraining::block_hooks(nn::ParamStore& ps,
                                             const std::vector<int>& block_list) {
  const bool zero = opts_.strategy == distributed::ShardStrategy::FullShard ||
                    opts_.strategy == distributed::ShardStrategy::ShardGradOp;
  if (!zero || shards() == 1 || !world_.device().is_cpu()) return nullptr;
  attach(ps);
  zero_ = true;
  hooked_ = &ps;
  const bool full = opts_.strategy == distributed::ShardStrategy::FullShard;
  auto& pgs = ps.groups();
  block_group_ = block_list;
  for (size_t i : std::vector<size_t>(block_list.begin(), block_list.end())) {
    Group& g = g_[i];
    g.per_block = true;
    hold(-4 * g.numel);  // the model's full gradient buffer goes
    if (full) {
      g.sharded_params = true;
      g.param_shard = Tensor::zeros({g.shard_numel}, DType::F32, pgs[i].data.device());
      if (g.end > g.begin)
        g.param_shard.narrow(0, 0, g.end - g.begin)
            .copy_from(pgs[i].data.narrow(0, g.begin, g.end - g.begin));
      hold(4 * g.shard_numel - 4 * g.numel);
      ps.bind_group(static_cast<int>(i), Tensor(), Tensor());
    } else {
      ps.bind_group(static_cast<int>(i), pgs[i].data, Tensor());
    }
  }
  for (int gi : block_group_) RAE_CHECK(gi >= 0, "sharded training: a block group is missing");
  int64_t blocks = 0;
  for (int k = 0; k < static_cast<int>(block_group_.size()); ++k) blocks += block_bytes(k);
  // Four average blocks for full_shard (parameters and gradients of two blocks), two for
  // shard_grad_op (gradients only): uniform models keep every overlap.
  budget_bytes_ =
      (full ? 4 : 2) * blocks / std::max<int64_t>(1, static_cast<int64_t>(block_group_.size()));
  peak_bytes_ = held_bytes_;  // the peak counts from here (the model was built whole)
  return this;
}

// Starts the all-gather of a block's parameters (full_shard; no-op when gathered or out of range).
void ShardedTraining::start_gather(int k) {
  if (k < 0 || k >= static_cast<int>(block_group_.size())) return;
  Group& g = g_[block_group_[k]];
  if (!g.sharded_params || g.gathered.defined()) return;
  g.gathered = Tensor::empty({g.padded}, DType::F32, g.param_shard.device());
  hold(4 * g.padded);
  g.gather_work = groups_.shard->all_gather_async(g.param_shard, g.gathered);
}

// Points the model's views of block k at its current buffers.
void ShardedTraining::bind(int k) {
  const int gi = block_group_[k];
  Group& g = g_[gi];
  Tensor data = hooked_->groups()[gi].data;
  if (g.sharded_params) data = g.gathered.defined() ? g.gathered.narrow(0, 0, g.numel) : Tensor();
  Tensor grad =
      g.grad_full.defined() && !g.wire_in.defined() ? g.grad_full.narrow(0, 0, g.numel) : Tensor();
  hooked_->bind_group(gi, data, grad);
}

void ShardedTraining::use_params(int k) {
  start_gather(k);
  Group& g = g_[block_group_[k]];
  g.gather_work.wait();
  g.gather_work = distributed::Work();
  bind(k);
}

void ShardedTraining::release_params(int k) {
  Group& g = g_[block_group_[k]];
  if (!g.sharded_params || !g.gathered.defined()) return;
  g.gather_work.wait();  // (a prefetch never used)
  g.gather_work = distributed::Work();
  g.gathered = Tensor();
  hold(-4 * g.padded);
  bind(k);
}

void ShardedTraining::progress() {
  for (int k = 0; k < static_cast<int>(block_group_.size()); ++k) {
    Group& g = g_[block_group_[k]];
    g.gather_work.test();
    // A completed reduce-scatter frees its gradient buffer now.
    if (g.wire_in.defined() && g.reduce_work.test()) finish_reduction(k);
  }
}

void ShardedTraining::before_forward(int k) {
  progress();
  use_params(k);
  start_gather(k + 1);  // overlaps this block's forward
}

void ShardedTraining::after_forward(int k) {
  progress();
  // The last block is the first that backward needs: keep it.
  if (k + 1 < static_cast<int>(block_group_.size())) release_params(k);
}

int64_t ShardedTraining::block_bytes(int k) const {
  if (k < 0 || k >= static_cast<int>(block_group_.size())) return 0;
  return 4 * g_[block_group_[k]].padded;
}

// Block k's backward holds its gradient buffer (and, full_shard, its gathered parameters); for
// overlap also the previous block's reduce-scatter in flight and (full_shard) the prefetched next
// block, as long as all of that fits the budget (four average blocks; two for shard_grad_op). A
// model with a few oversized blocks (the DDT head) waits for the reduction and gathers those blocks
// on demand instead. Decided from the sizes alone, so every rank issues the same collectives in
// order.
ShardedTraining::BackwardPlan ShardedTraining::plan_backward(int k) const {
  const bool full = opts_.strategy == distributed::ShardStrategy::FullShard;
  const int64_t own = (full ? 2 : 1) * block_bytes(k), prev = block_bytes(k + 1);
  const int64_t next = full ? block_bytes(k - 1) : 0;
  BackwardPlan p;
  p.keep_in_flight = own + prev + next <= budget_bytes_;
  const int64_t base = own + (p.keep_in_flight ? prev : 0);
  p.prefetch = next > 0 && base + next <= budget_bytes_;
  p.transient = base + (p.prefetch ? next : 0);
  return p;
}

int64_t ShardedTraining::planned_transient_bytes() const {
  int64_t peak = 0;
  const int n = static_cast<int>(block_group_.size());
  for (int k = 0; k < n; ++k) {
    if (opts_.strategy == distributed::ShardStrategy::FullShard)
      peak = std::max(peak, block_bytes(k) + block_bytes(k + 1));  // forward with prefetch
    peak = std::max(peak, plan_backward(k).transient);
  }
  return peak;
}

void ShardedTraining::before_backward(int k) {
  progress();
  const BackwardPlan plan = plan_backward(k);
  if (!plan.keep_in_flight) finish_reduction(k + 1);
  use_params(k);
  if (plan.prefetch) start_gather(k - 1);  // overlaps this block's backward
  Group& g = g_[block_group_[k]];
  finish_reduction(k);  // (a previous micro-batch's, normally long done)
  g.grad_full = Tensor::zeros({g.padded}, DType::F32, g.grad_shard.device());
  hold(4 * g.padded);
  bind(k);
}

void ShardedTraining::after_backward(int k) {
  Group& g = g_[block_group_[k]];
  const bool bf16 = opts_.comm_dtype == DType::BF16;
  g.accumulate = !g.fresh;
  g.fresh = false;
  g.wire_in = bf16 ? g.grad_full.cast(DType::BF16) : g.grad_full;
  g.wire_out = bf16 || g.accumulate
                   ? Tensor::empty({g.shard_numel}, opts_.comm_dtype, g.grad_shard.device())
                   : g.grad_shard;
  if (bf16) hold(2 * g.padded);
  if (g.wire_out.raw() != g.grad_shard.raw())
    hold(static_cast<int64_t>(dtype_size(opts_.comm_dtype)) * g.shard_numel);
  // The trainer's gradients are each rank's share of the global-batch mean: sum them.
  g.reduce_work =
      groups_.shard->reduce_scatter_async(g.wire_in, g.wire_out, distributed::ReduceOp::Sum);
  release_params(k);
  bind(k);  // the model no longer sees the gradient buffer
  // The previous block's reduce-scatter had this block's backward to overlap with: complete it,
  // so at most two gradient buffers exist (the one in flight and the next block's).
  for (int j = k + 1; j < static_cast<int>(block_group_.size()); ++j) finish_reduction(j);
  if (k == 0)
    for (int j = 0; j < static_cast<int>(block_group_.size()); ++j) finish_reduction(j);
}

void ShardedTraining::finish_reduction(int k) {
  if (k < 0 || k >= static_cast<int>(block_group_.size())) return;
  Group& g = g_[block_group_[k]];
  if (!g.wire_in.defined()) return;
  g.reduce_work.wait();
  g.reduce_work = distributed::Work();
  const bool bf16 = opts_.comm_dtype == DType::BF16;
  if (g.wire_out.raw() != g.grad_shard.raw()) {
    Tensor r = bf16 ? g.wire_out.cast(DType::F32) : g.wire_out;
    if (g.accumulate)
      ops::add_(g.grad_shard, r);
    else
      g.grad_shard.copy_from(r);
    hold(-static_cast<int64_t>(dtype_size(opts_.comm_dtype)) * g.shard_numel);
  }
  if (bf16) hold(-2 * g.padded);
  g.wire_in = Tensor(), g.wire_out = Tensor(), g.grad_full = Tensor();
  hold(-4 * g.padded);
}

std::string ShardedTraining::memory_report(const nn::ParamStore& ps) const {
  // Persistent bytes, plus the transient per-block buffers of ZeRO-2/3 (gathered blocks and
  // gradient buffers in flight, planned by plan_backward).
  double params = 0, grads = 0, shard = 0;
  const bool full = zero_ && opts_.strategy == distributed::ShardStrategy::FullShard;
  for (const auto& pg : ps.groups()) {
    const double n = static_cast<double>(pg.numel) * 4;
    const double sh = static_cast<double>((pg.numel + shards() - 1) / shards()) * 4;
    const bool block = zero_ && g_[&pg - &ps.groups()[0]].per_block;
    params += block && full ? sh : n;
    grads += block ? 0 : n;
    shard += sh;
  }
  const double transient = zero_ ? static_cast<double>(planned_transient_bytes()) : 0;
  const double grad_shard = shards() == 1 ? 0 : shard;
  std::ostringstream os;
  os << distributed::strategy_name(opts_.strategy) << " over " << shards() << " shard(s)"
     << (groups_.replicate && shards() > 1
             ? " x " + std::to_string(groups_.replicate->size()) + " replicas"
             : std::string())
     << ": params " << mib(params) << (full ? " (block shards + replicated rest)" : " (full)")
     << ", grads " << mib(grads) << (zero_ ? " (non-block)" : " (full)");
  if (zero_) os << ", per-block buffers (gathered blocks, gradients in flight) " << mib(transient);
  os << ", grad shard " << mib(grad_shard) << ", AdamW m+v " << mib(2 * shard) << ", EMA "
     << mib(shard) << ", gradients on the wire in " << dtype_name(opts_.comm_dtype)
     << "; planned params+grads peak "
     << static_cast<int64_t>(params + grads + transient + grad_shard) << " bytes";
  return os.str();
}

void ShardedTraining::sync_gradients(nn::ParamStore& ps) {
  attach(ps);
  auto& pgs = ps.groups();
  const bool bf16 = opts_.comm_dtype == DType::BF16;
  const int S = shards();
  struct Pending {
    distributed::Work work;
    Tensor wire_in, wire_out;
  };
  std::vector<Pending> pending(pgs.size());
  // Block groups under the hooks: their reductions were issued during backward.
  for (int k = 0; k < static_cast<int>(block_group_.size()); ++k) finish_reduction(k);
  // Stage 1, every group in flight at once (last groups first, as backward produces them):
  // all-reduce (one shard) or reduce-scatter into the owned shard. The trainer's gradients are
  // each rank's share of the global-batch mean, so the reduction is a sum.
  for (size_t i = pgs.size(); i-- > 0;) {
    Group& g = g_[i];
    if (g.per_block) continue;
    Tensor grad = pgs[i].grad;
    Pending& p = pending[i];
    if (S == 1) {
      if (!groups_.replicate || groups_.replicate->size() == 1) continue;
      p.wire_in = bf16 ? grad.cast(DType::BF16) : grad;
      p.work = groups_.replicate->all_reduce_async(p.wire_in, distributed::ReduceOp::Sum);
      continue;
    }
    Tensor in = grad;
    if (g.padded != g.numel || bf16) {
      in = Tensor::zeros({g.padded}, opts_.comm_dtype, grad.device());
      in.narrow(0, 0, g.numel).copy_from(bf16 ? grad.cast(DType::BF16) : grad);
    }
    p.wire_in = in;
    p.wire_out = bf16 ? Tensor::empty({g.shard_numel}, DType::BF16, grad.device()) : g.grad_shard;
    p.work = groups_.shard->reduce_scatter_async(in, p.wire_out, distributed::ReduceOp::Sum);
  }
  for (size_t i = pgs.size(); i-- > 0;) pending[i].work.wait();
  // Stage 2 (hybrid): sum the shards across the replicas.
  if (S > 1 && groups_.replicate && groups_.replicate->size() > 1) {
    for (size_t i = pgs.size(); i-- > 0;)
      if (!g_[i].per_block)
        pending[i].work =
            groups_.replicate->all_reduce_async(pending[i].wire_out, distributed::ReduceOp::Sum);
    for (size_t i = pgs.size(); i-- > 0;) pending[i].work.wait();
  }
  for (Group& g : g_) g.fresh = true;  // the next backward starts the next step's gradients
  for (size_t i = 0; i < pgs.size(); ++i) {
    if (!bf16 || g_[i].per_block) continue;
    if (S == 1) {
      if (pending[i].wire_in.defined()) pgs[i].grad.copy_from(pending[i].wire_in.cast(DType::F32));
    } else {
      g_[i].grad_shard.copy_from(pending[i].wire_out.cast(DType::F32));
    }
  }
}

// Small host values through a communicator of any backend (NCCL needs device memory).
Tensor ShardedTraining::on_comm(distributed::Communicator& c, const Tensor& host) {
  return host.to(c.device());
}
Tensor ShardedTraining::to_host(const Tensor& t) {
  return t.to(Device::cpu());
}

double ShardedTraining::sum_scalar(double v) {
  Tensor t = on_comm(world_, Tensor::full({1}, v, DType::F64));
  world_.all_reduce_async(t, distributed::ReduceOp::Sum).synchronize();
  return to_host(t).item(0);
}

double ShardedTraining::grad_norm(const nn::ParamStore& ps) {
  if (shards() == 1) return global_grad_norm(ps);  // every rank holds the whole reduced gradient
  double local = 0;
  for (const Group& g : g_) {
    if (g.end == g.begin) continue;
    Tensor part = g.grad_shard.narrow(0, 0, g.end - g.begin);
    local += part.is_cuda() ? ops::sum_squares(part) : deterministic_sum_squares(part);
  }
  Tensor t = on_comm(*groups_.shard, Tensor::full({1}, local, DType::F64));
  groups_.shard->all_reduce_async(t, distributed::ReduceOp::Sum)
      .synchronize();  // replicas are equal
  return std::sqrt(to_host(t).item(0));
}

void ShardedTraining::optimizer_step(nn::ParamStore& ps, double lr, double grad_scale,
                                     double ema_decay) {
  attach(ps);
  ++adam_step_;
  ops::AdamWParams p;
  p.lr = lr, p.beta1 = cfg_.beta1, p.beta2 = cfg_.beta2, p.eps = cfg_.eps;
  p.weight_decay = cfg_.weight_decay;
  p.step = adam_step_;
  p.grad_scale = grad_scale;
  auto& pgs = ps.groups();
  for (size_t i = 0; i < pgs.size(); ++i) {
    Group& g = g_[i];
    const int64_t n = g.end - g.begin;
    if (n == 0) continue;
    Tensor param = owned_param(ps, i);
    Tensor grad = shards() == 1 ? pgs[i].grad : g.grad_shard.narrow(0, 0, n);
    ops::adamw_step(param, grad, g.m.narrow(0, 0, n), g.v.narrow(0, 0, n), p);
    ops::ema_update(g.ema.narrow(0, 0, n), param, ema_decay);
  }
  gather_params(ps);
}

// Every rank's owned ranges -> the full parameters on every rank.
void ShardedTraining::gather_params(nn::ParamStore& ps) {
  if (shards() == 1) return;
  auto& pgs = ps.groups();
  std::vector<distributed::Work> works(pgs.size());
  std::vector<Tensor> staging(pgs.size());
  for (size_t i = 0; i < pgs.size(); ++i) {
    Group& g = g_[i];
    if (g.sharded_params) continue;  // gathered by the hooks when used
    Tensor data = pgs[i].data;
    if (g.padded == g.numel) {  // in place: my chunk of the group's own buffer
      works[i] = groups_.shard->all_gather_async(data.narrow(0, g.begin, g.shard_numel), data);
    } else {
      staging[i] = Tensor::empty({g.padded}, DType::F32, data.device());
      Tensor mine = Tensor::zeros({g.shard_numel}, DType::F32, data.device());
      if (g.end > g.begin)
        mine.narrow(0, 0, g.end - g.begin).copy_from(data.narrow(0, g.begin, g.end - g.begin));
      works[i] = groups_.shard->all_gather_async(mine, staging[i]);
    }
  }
  for (size_t i = 0; i < pgs.size(); ++i) {
    works[i].wait();
    if (staging[i].defined()) pgs[i].data.copy_from(staging[i].narrow(0, 0, g_[i].numel));
  }
}

// ---- checkpoints ----

std::string ShardedTraining::save_checkpoint(const std::string& run_dir, const nn::ParamStore& ps,
                                             const RunState& st, int64_t keep_last,
                                             int64_t keep_every) {
  if (run_dir.empty()) return "";
  attach(ps);
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::string name = checkpoint_name(st.step);
  const fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  if (rank() == 0) {
    fs::create_directories(root);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  }
  world_.barrier();
  const int S = shards();
  // Writers save their shard in parallel: param/m/v/ema ranges of every group.
  Tensor info = Tensor::zeros({3 * world_size()}, DType::I64);
  Tensor mine = Tensor::zeros({3}, DType::I64);  // bytes (-1: not a writer), checksum, shard
  if (writer()) {
    std::map<std::string, Tensor> t;
    for (size_t i = 0; i < g_.size(); ++i) {
      const Group& g = g_[i];
      const int64_t n = g.end - g.begin;
      if (n == 0) continue;
      t["param." + g.name] = owned_param(ps, i);
      t["m." + g.name] = g.m.narrow(0, 0, n);
      t["v." + g.name] = g.v.narrow(0, 0, n);
      t["ema." + g.name] = g.ema.narrow(0, 0, n);
    }
    const std::string path = (tmp / shard_file(shard_rank(), S)).string();
    safetensors::save(path, t,
                      {{"shard", std::to_string(shard_rank())},
                       {"shards", std::to_string(S)},
                       {"step", std::to_string(st.step)}});
    mine.data<int64_t>()[0] = static_cast<int64_t>(fs::file_size(path));
    mine.data<int64_t>()[1] = static_cast<int64_t>(std::stoull(file_checksum(path), nullptr, 16));
    mine.data<int64_t>()[2] = shard_rank();
  } else {
    mine.data<int64_t>()[0] = -1;
  }
  {
    Tensor dev_info = on_comm(world_, info);
    world_.all_gather_async(on_comm(world_, mine), dev_info).synchronize();
    info = to_host(dev_info);
  }
  std::string out;
  if (rank() == 0) {
    json s = {{"step", st.step},
              {"samples_seen", st.samples_seen},
              {"adam_step", adam_step_},
              {"bad_in_row", st.bad_in_row},
              {"skipped_total", st.skipped_total},
              {"seed", st.seed},
              {"preset", st.preset},
              {"data", st.data},
              {"model_config", st.model_config}};
    write_file_atomic((tmp / "state.json").string(), s.dump(2) + "\n");
    json groups = json::array();
    for (const Group& g : g_) groups.push_back({{"name", g.name}, {"numel", g.numel}});
    json m = {{"format", kShardedFormat},
              {"version", 1},
              {"step", st.step},
              {"shards", S},
              {"strategy", distributed::strategy_name(opts_.strategy)},
              {"world_size", world_size()},
              {"dit_config", st.model_config},
              {"groups", groups},
              {"checksum_algorithm", kChecksumAlgorithm},
              {"files", json::object()}};
    int written = 0;
    for (int r = 0; r < world_size(); ++r) {
      const int64_t* row = info.data<int64_t>() + 3 * r;
      if (row[0] < 0) continue;
      m["files"][shard_file(static_cast<int>(row[2]), S)] = {
          {"bytes", row[0]}, {"checksum", hex64(static_cast<uint64_t>(row[1]))}};
      ++written;
    }
    RAE_CHECK(written == S, "checkpoint: ", written, " shards written, expected ", S);
    const std::string sp = (tmp / "state.json").string();
    m["files"]["state.json"] = {{"bytes", fs::file_size(sp)}, {"checksum", file_checksum(sp)}};
    write_file_atomic((tmp / "manifest.json").string(), m.dump(2) + "\n");
    fsync_path(tmp.string());
    fs::remove_all(final_dir);
    rename_durable(tmp.string(), final_dir.string());
    // Retention: the newest keep_last, plus multiples of keep_every.
    auto all = list_checkpoints(run_dir);
    for (size_t i = static_cast<size_t>(std::max<int64_t>(keep_last, 1)); i < all.size(); ++i) {
      int64_t step = std::stoll(fs::path(all[i]).filename().string().substr(5));
      if (keep_every > 0 && step % keep_every == 0) continue;
      fs::remove_all(all[i]);
    }
    out = final_dir.string();
  }
  world_.barrier();
  return out;
}

std::optional<RunState> ShardedTraining::load_latest_checkpoint(const std::string& run_dir,
                                                                nn::ParamStore& ps) {
  if (run_dir.empty()) return std::nullopt;
  attach(ps);
  // Rank 0 picks the newest checkpoint that verifies; everyone loads that one.
  Tensor step = Tensor::full({1}, -1, DType::I64);
  if (rank() == 0) {
    if (auto d = latest_valid_any_checkpoint(run_dir))
      step.data<int64_t>()[0] = std::stoll(fs::path(*d).filename().string().substr(5));
  }
  {
    Tensor dev_step = on_comm(world_, step);
    world_.broadcast_async(dev_step, 0).synchronize();
    step = to_host(dev_step);
  }
  if (step.data<int64_t>()[0] < 0) return std::nullopt;
  const std::string dir =
      (fs::path(run_dir) / "checkpoints" / checkpoint_name(step.data<int64_t>()[0])).string();
  RunState st;
  json m = read_json(fs::path(dir) / "manifest.json");
  if (m.value("format", "") == kShardedFormat)
    load_sharded(dir, ps, &st);
  else
    load_single(dir, ps, &st);
  adam_step_ = st.adam_step;
  world_.barrier();
  return st;
}

void ShardedTraining::load_sharded(const std::string& dir, nn::ParamStore& ps, RunState* st) {
  const fs::path d(dir);
  json m = read_json(d / "manifest.json");
  const int old_shards = m.at("shards").get<int>();
  const auto& mg = m.at("groups");
  RAE_CHECK(mg.size() == g_.size(), dir, ": checkpoint has ", mg.size(),
            " parameter groups, the model has ", g_.size());
  for (size_t i = 0; i < g_.size(); ++i) {
    RAE_CHECK(mg[i].at("name").get<std::string>() == g_[i].name &&
                  mg[i].at("numel").get<int64_t>() == g_[i].numel,
              dir, ": parameter group ", i, " is '", mg[i].at("name").get<std::string>(), "' (",
              mg[i].at("numel").get<int64_t>(), ") in the checkpoint, '", g_[i].name, "' (",
              g_[i].numel, ") in the model");
  }
  // Which old shards hold my ranges (with the same shard count: exactly my own shard).
  std::map<int, safetensors::File> files;
  auto file = [&](int k) -> const safetensors::File& {
    auto it = files.find(k);
    if (it == files.end())
      it = files.emplace(k, safetensors::load((d / shard_file(k, old_shards)).string())).first;
    return it->second;
  };
  for (size_t i = 0; i < g_.size(); ++i) {
    Group& g = g_[i];
    for (int k = 0; k < old_shards; ++k) {
      auto [ob, oe] = shard_range(g.numel, old_shards, k);
      const int64_t b = std::max(ob, g.begin), e = std::min(oe, g.end);
      if (b >= e) continue;
      const safetensors::File& f = file(k);
      auto piece = [&](const std::string& what) {
        return f.get(what + "." + g.name, DType::F32, Shape{oe - ob}).narrow(0, b - ob, e - b);
      };
      owned_param(ps, i).narrow(0, b - g.begin, e - b).copy_from(piece("param"));
      g.m.narrow(0, b - g.begin, e - b).copy_from(piece("m"));
      g.v.narrow(0, b - g.begin, e - b).copy_from(piece("v"));
      g.ema.narrow(0, b - g.begin, e - b).copy_from(piece("ema"));
    }
  }
  gather_params(ps);  // (with one shard every rank read the whole model above)
  *st = state_from_json(read_json(d / "state.json"));
}

// A checkpoint of the single-process format: full model/ema/optimizer files; keep my ranges.
void ShardedTraining::load_single(const std::string& dir, nn::ParamStore& ps, RunState* st) {
  // full_shard blocks: full buffers only while loading.
  for (size_t i = 0; i < g_.size(); ++i)
    if (g_[i].sharded_params)
      ps.bind_group(static_cast<int>(i),
                    Tensor::zeros({g_[i].numel}, DType::F32, g_[i].param_shard.device()), Tensor());
  Ema ema(ps);
  AdamW adam(ps, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay);
  load_checkpoint(dir, ps, &ema, &adam, st);
  for (size_t i = 0; i < g_.size(); ++i) {
    Group& g = g_[i];
    const int64_t n = g.end - g.begin;
    if (g.sharded_params) {
      if (n > 0) g.param_shard.narrow(0, 0, n).copy_from(ps.groups()[i].data.narrow(0, g.begin, n));
      ps.bind_group(static_cast<int>(i), Tensor(), Tensor());
    }
    if (n == 0) continue;
    g.m.narrow(0, 0, n).copy_from(adam.m()[i].narrow(0, g.begin, n));
    g.v.narrow(0, 0, n).copy_from(adam.v()[i].narrow(0, g.begin, n));
    g.ema.narrow(0, 0, n).copy_from(ema.buffers()[i].narrow(0, g.begin, n));
  }
}

// ---- verification and export ----

std::string verify_any_checkpoint(const std::string& dir) {
  json m;
  try {
    m = read_json(fs::path(dir) / "manifest.json");
  } catch (const std::exception& e) {
    return std::string("unreadable manifest: ") + e.what();
  }
  if (m.value("format", "") != kShardedFormat) return verify_checkpoint(dir);
  try {
    for (auto& [f, info] : m.at("files").items()) {
      std::string p = (fs::path(dir) / f).string();
      if (!fs::exists(p)) return "missing " + f;
      if (fs::file_size(p) != info.at("bytes").get<uint64_t>()) return "size mismatch for " + f;
      if (info.at("checksum").get<std::string>() != file_checksum(p))
        return "checksum mismatch for " + f;
    }
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return "";
}

std::optional<std::string> latest_valid_any_checkpoint(const std::string& run_dir) {
  for (auto& d : list_checkpoints(run_dir)) {
    std::string problem = verify_any_checkpoint(d);
    if (problem.empty()) return d;
    log::warn("checkpoint ", d, " is corrupt (", problem, "); skipping it");
  }
  return std::nullopt;
}

bool has_sharded_checkpoint(const std::string& run_dir) {
  for (auto& d : list_checkpoints(run_dir)) {
    try {
      if (read_json(fs::path(d) / "manifest.json").value("format", "") == kShardedFormat)
        return true;
    } catch (const std::exception&) {
    }
  }
  return false;
}

void export_checkpoint(const std::string& checkpoint_dir, bool ema, const std::string& out) {
  const fs::path d(checkpoint_dir);
  std::string problem = verify_any_checkpoint(checkpoint_dir);
  RAE_CHECK(problem.empty(), "checkpoint ", checkpoint_dir, " does not verify: ", problem);
  json m = read_json(d / "manifest.json");
  if (m.value("format", "") != kShardedFormat) {
    // Single-process format: the files are already consolidated.
    auto f = safetensors::load((d / (ema ? "ema.safetensors" : "model.safetensors")).string());
    safetensors::save(out, f.tensors, f.metadata);
    return;
  }
  const std::string cfg_json = m.at("dit_config").get<std::string>();
  RAE_CHECK(!cfg_json.empty(), checkpoint_dir, ": manifest lacks the model config");
  models::DiTDH model(models::DiTConfig::from_json(cfg_json));
  const RunState st = state_from_json(read_json(d / "state.json"));
  model.init(st.seed);  // fixed buffers (position table, Fourier features) come from the seed
  nn::ParamStore& ps = model.params();
  const int shards = m.at("shards").get<int>();
  RAE_CHECK(m.at("groups").size() == ps.groups().size(), checkpoint_dir,
            ": parameter groups do not match the model config");
  const std::string what = ema ? "ema." : "param.";
  for (int k = 0; k < shards; ++k) {
    auto f = safetensors::load((d / shard_file(k, shards)).string());
    for (auto& pg : ps.groups()) {
      auto [b, e] = shard_range(pg.numel, shards, k);
      if (b >= e) continue;
      pg.data.narrow(0, b, e - b).copy_from(f.get(what + pg.name, DType::F32, Shape{e - b}));
    }
  }
  safetensors::save(out, ps.state_dict(),
                    {{"dit_config", cfg_json}, {"step", std::to_string(st.step)}});
}

// ---- session ----

DistSession::DistSession(const DistSessionOptions& o, const TrainConfig& cfg,
                         const std::string& config_text) {
  distributed::DistOptions d;
  d.timeout_s = o.timeout_s;
  d.node_size = o.node_size;
  world_ = distributed::MpiCommunicator::create_world(d);
  distributed::check_consistency(*world_, config_text);
  ShardOptions so;
  so.strategy = distributed::parse_strategy(o.shard);
  RAE_CHECK(o.comm_dtype == "fp32" || o.comm_dtype == "bf16", "--dist.comm_dtype '", o.comm_dtype,
            "' (expected fp32 or bf16)");
  so.comm_dtype = o.comm_dtype == "bf16" ? DType::BF16 : DType::F32;
  // CUDA training moves tensors with NCCL (one GPU per rank); MPI stays for the start-up check.
  distributed::Communicator* data_comm = world_.get();
  if (parse_device(cfg.device).is_cuda()) {
    RAE_CHECK(distributed::nccl_compiled(), "train.device = ", cfg.device,
              " under mpirun needs a CUDA build with NCCL");
    nccl_ = distributed::make_nccl_communicator(*world_);
    data_comm = nccl_.get();
  }
  sync_ = std::make_unique<ShardedTraining>(*data_comm, so, cfg);
  if (world_->rank() == 0)
    log::info("distributed: ", world_->size(), " ranks, ", world_->num_nodes(), " node(s) of ",
              world_->local_size(), ", ", data_comm->backend(), " collectives, watchdog timeout ",
              o.timeout_s, " s");
}

DistSession::~DistSession() = default;

distributed::Communicator& DistSession::world() {
  return *world_;
}

void DistSession::report_start(const nn::ParamStore& ps) {
  if (world_->rank() == 0) log::info("memory per rank: ", sync_->memory_report(ps));
}

void DistSession::finish() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  log::info("measured peak resident memory ", mib(static_cast<double>(ru.ru_maxrss) * 1024));
  if (world_->rank() == 0)
    log::info("measured peak params+grads per rank: ", sync_->param_grad_bytes_peak(), " bytes (",
              mib(static_cast<double>(sync_->param_grad_bytes_peak())), ")");
  distributed::finalize(*world_);
}

}  // namespace rae::train
