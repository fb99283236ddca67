#include "distributed/flat_shard.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <sstream>

#include "core/error.h"

namespace rae::distributed {

// ---- strategies and layouts ----

const char* strategy_name(ShardStrategy s) {
  switch (s) {
    case ShardStrategy::NoShard:
      return "no_shard";
    case ShardStrategy::ShardGradOp:
      return "shard_grad_op";
    case ShardStrategy::FullShard:
      return "full_shard";
    case ShardStrategy::HybridShard:
      return "hybrid_shard";
  }
  return "?";
}

ShardStrategy parse_strategy(const std::string& name) {
  for (ShardStrategy s : {ShardStrategy::NoShard, ShardStrategy::ShardGradOp,
                          ShardStrategy::FullShard, ShardStrategy::HybridShard})
    if (name == strategy_name(s)) return s;
  RAE_THROW("unknown shard strategy '", name,
            "' (expected no_shard, shard_grad_op, full_shard or hybrid_shard)");
}

int64_t FlatLayout::param_numel() const {
  int64_t n = 0;
  for (const Entry& e : entries) n += e.numel;
  return n;
}

int FlatLayout::find(const std::string& name) const {
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].name == name) return static_cast<int>(i);
  return -1;
}

std::vector<FlatLayout::Piece> FlatLayout::pieces_in_shard(int r) const {
  RAE_CHECK(r >= 0 && r < shards, "shard ", r, " outside 0..", shards - 1);
  const int64_t lo = shard_begin(r), hi = lo + shard_numel();
  std::vector<Piece> out;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    int64_t b = std::max(lo, e.offset), end = std::min(hi, e.offset + e.numel);
    if (b < end) out.push_back({static_cast<int>(i), b - e.offset, end - e.offset, b - lo});
  }
  return out;
}

FlatLayout make_flat_layout(const std::vector<std::pair<std::string, Shape>>& params, int shards,
                            int64_t align) {
  RAE_CHECK(shards >= 1, "flat layout needs >= 1 shard, got ", shards);
  RAE_CHECK(align >= 1, "flat layout alignment must be >= 1, got ", align);
  FlatLayout l;
  l.shards = shards;
  int64_t offset = 0;
  for (const auto& [name, shape] : params) {
    RAE_CHECK(l.find(name) < 0, "flat layout: parameter '", name, "' appears twice");
    offset = (offset + align - 1) / align * align;
    l.entries.push_back({name, shape, offset, shape.numel()});
    offset += shape.numel();
  }
  l.used_numel = offset;
  l.padded_numel = std::max<int64_t>(shards, (offset + shards - 1) / shards * shards);
  return l;
}

// ---- groups ----

ShardGroups ShardGroups::make(Communicator& world, ShardStrategy s) {
  ShardGroups g;
  g.strategy = s;
  switch (s) {
    case ShardStrategy::NoShard:
      g.replicate = &world;
      break;
    case ShardStrategy::ShardGradOp:
    case ShardStrategy::FullShard:
      g.shard = &world;
      break;
    case ShardStrategy::HybridShard: {
      // Every node must have the same number of ranks so that the replica groups line up.
      Tensor sizes = Tensor::empty({world.size()}, DType::I32, world.device());
      Tensor mine = Tensor::full({1}, world.local_size(), DType::I32).to(world.device());
      world.all_gather_async(mine, sizes).synchronize();
      Tensor host = sizes.to(Device::cpu());
      for (int r = 0; r < world.size(); ++r)
        RAE_CHECK(host.data<int32_t>()[r] == world.local_size(),
                  "hybrid_shard needs equal ranks per node: rank ", r, " has ",
                  host.data<int32_t>()[r], ", rank ", world.rank(), " has ", world.local_size());
      g.owned_shard = world.split(world.node_rank(), world.rank(), "shard");
      g.owned_replicate = world.split(world.local_rank(), world.rank(), "replicate");
      g.shard = g.owned_shard.get();
      g.replicate = g.owned_replicate.get();
      break;
    }
  }
  return g;
}

// ---- memory accounting ----

namespace {
std::atomic<int64_t> g_bytes_now{0}, g_bytes_peak{0};
std::string mib(int64_t b) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << b / 1048576.0 << " MiB";
  return os.str();
}
}  // namespace

void track_sharded_bytes(int64_t delta) {
  int64_t now = g_bytes_now += delta;
  int64_t peak = g_bytes_peak.load();
  while (now > peak && !g_bytes_peak.compare_exchange_weak(peak, now)) {
  }
}

int64_t sharded_bytes_now() {
  return g_bytes_now;
}
int64_t sharded_bytes_peak() {
  return g_bytes_peak;
}
void reset_sharded_bytes_peak() {
  g_bytes_peak = g_bytes_now.load();
}

std::string MemoryPlan::str() const {
  return "params " + mib(param_bytes) + ", grads " + mib(grad_bytes) + ", optimizer " +
         mib(optimizer_bytes) + ", transient " + mib(transient_bytes) + ", total " + mib(total());
}

MemoryPlan plan_memory(const std::vector<FlatLayout>& blocks, ShardStrategy s, int states_per_param,
                       DType comm_dtype) {
  MemoryPlan p;
  int64_t full = 0, shard = 0, largest = 0, largest_shard = 0;
  for (const FlatLayout& l : blocks) {
    full += l.padded_numel;
    shard += l.shard_numel();
    largest = std::max(largest, l.padded_numel);
    largest_shard = std::max(largest_shard, l.shard_numel());
  }
  const int64_t f = 4;
  const bool bf16 = comm_dtype == DType::BF16;
  // ShardedModel keeps at most two blocks gathered (current + prefetched) and two gradient
  // reductions alive (the one in flight + the block whose backward runs); each reduction may
  // stage a bf16 copy of the block's gradients and a result shard (bf16, or f32 to accumulate).
  const int64_t staging = 2 * ((bf16 ? largest * 2 : 0) + largest_shard * f);
  switch (s) {
    case ShardStrategy::NoShard:
      p.param_bytes = full * f;
      p.grad_bytes = full * f;
      p.optimizer_bytes = full * f * states_per_param;
      p.transient_bytes = bf16 ? 2 * largest * 2 : 0;
      break;
    case ShardStrategy::ShardGradOp:
      p.param_bytes = full * f;
      p.grad_bytes = shard * f;
      p.optimizer_bytes = shard * f * states_per_param;
      p.transient_bytes = 2 * largest * f + staging;
      break;
    case ShardStrategy::FullShard:
    case ShardStrategy::HybridShard:
      p.param_bytes = shard * f;
      p.grad_bytes = shard * f;
      p.optimizer_bytes = shard * f * states_per_param;
      p.transient_bytes = 2 * largest * f + 2 * largest * f + staging;
      break;
  }
  return p;
}

}  // namespace rae::distributed
