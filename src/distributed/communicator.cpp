#include "distributed/communicator.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <sstream>

#include "core/error.h"
#include "distributed/watchdog.h"

namespace rae::distributed {

const char* collective_name(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::AllReduce:
      return "all_reduce";
    case CollectiveKind::ReduceScatter:
      return "reduce_scatter";
    case CollectiveKind::AllGather:
      return "all_gather";
    case CollectiveKind::Broadcast:
      return "broadcast";
    case CollectiveKind::Barrier:
      return "barrier";
    case CollectiveKind::Send:
      return "send";
    case CollectiveKind::Recv:
      return "recv";
  }
  return "?";
}

std::string Topology::str() const {
  std::ostringstream os;
  os << "rank " << rank << "/" << size << ", node " << node_rank << "/" << num_nodes << ", local "
     << local_rank << "/" << local_size;
  if (physical_local_rank != local_rank) os << " (physical local " << physical_local_rank << ")";
  return os.str();
}

Topology topology_from_node_ids(const std::vector<int>& node_ids, int rank,
                                const std::vector<int>& physical_node_ids) {
  const int n = static_cast<int>(node_ids.size());
  RAE_CHECK(rank >= 0 && rank < n, "rank ", rank, " outside 0..", n - 1);
  Topology t;
  t.rank = rank;
  t.size = n;
  // Nodes are numbered by their lowest rank.
  std::map<int, int> first_rank;  // node id -> lowest rank
  for (int r = 0; r < n; ++r) first_rank.try_emplace(node_ids[r], r);
  std::vector<int> firsts;
  for (auto& [id, r] : first_rank) firsts.push_back(r);
  std::sort(firsts.begin(), firsts.end());
  t.num_nodes = static_cast<int>(firsts.size());
  t.node_rank = static_cast<int>(
      std::find(firsts.begin(), firsts.end(), first_rank[node_ids[rank]]) - firsts.begin());
  t.local_rank = t.local_size = t.physical_local_rank = 0;
  for (int r = 0; r < n; ++r) {
    if (node_ids[r] == node_ids[rank]) {
      if (r < rank) ++t.local_rank;
      ++t.local_size;
    }
    if (physical_node_ids[r] == physical_node_ids[rank] && r < rank) ++t.physical_local_rank;
  }
  return t;
}

DistOptions DistOptions::from_env() {
  DistOptions o;
  if (const char* s = std::getenv("RAE_DIST_TIMEOUT_S")) {
    try {
      o.timeout_s = std::stod(s);
    } catch (...) {
      RAE_THROW("RAE_DIST_TIMEOUT_S='", s, "' is not a number");
    }
  }
  if (const char* s = std::getenv("RAE_DIST_NODE_SIZE")) {
    try {
      o.node_size = std::stoi(s);
    } catch (...) {
      RAE_THROW("RAE_DIST_NODE_SIZE='", s, "' is not an integer");
    }
  }
  return o;
}

bool dtype_reducible(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::I32 ||
         t == DType::I64;
}

void check_collective_tensor(const Tensor& t, Device expect, const char* what, const char* arg,
                             const Communicator& comm) {
  RAE_CHECK(t.defined(), comm.label(), ".", what, ": ", arg, " is undefined (rank ", comm.rank(),
            ")");
  RAE_CHECK(t.is_contiguous(), comm.label(), ".", what, ": ", arg, " ", t.str(),
            " must be contiguous (rank ", comm.rank(), ")");
  RAE_CHECK(t.device() == expect, comm.label(), ".", what, ": ", arg, " ", t.str(), " must be on ",
            expect.str(), " for the ", comm.backend(), " backend (rank ", comm.rank(), ")");
}

std::vector<int64_t> all_gather_i64(Communicator* comm, const std::vector<int64_t>& mine) {
  if (!comm) return mine;
  const int64_t n = static_cast<int64_t>(mine.size());
  Tensor in = Tensor::empty({n}, DType::I64);
  std::copy(mine.begin(), mine.end(), in.data<int64_t>());
  Tensor out = Tensor::empty({n * comm->size()}, DType::I64, comm->device());
  comm->all_gather_async(in.to(comm->device()), out).synchronize();
  Tensor host = out.to(Device::cpu());
  return std::vector<int64_t>(host.data<int64_t>(), host.data<int64_t>() + host.numel());
}

int64_t broadcast_i64(Communicator* comm, int64_t value, int root) {
  if (!comm) return value;
  Tensor t = Tensor::full({1}, 0, DType::I64);
  t.data<int64_t>()[0] = value;
  Tensor d = t.to(comm->device());
  comm->broadcast_async(d, root).synchronize();
  return d.to(Device::cpu()).data<int64_t>()[0];
}

double sum_f64(Communicator* comm, double value) {
  if (!comm) return value;
  Tensor t = Tensor::full({1}, value, DType::F64).to(comm->device());
  comm->all_reduce_async(t, ReduceOp::Sum).synchronize();
  return t.to(Device::cpu()).item(0);
}

void barrier(Communicator* comm) {
  if (comm) comm->barrier();
}

namespace {
std::atomic<int64_t> g_step{0};
}
void set_step(int64_t step) {
  g_step = step;
  watchdog::note_step(step);
}
int64_t current_step() {
  return g_step;
}

}  // namespace rae::distributed

#ifndef RAE_WITH_CUDA
#include "distributed/nccl_communicator.h"
namespace rae::distributed {
bool nccl_compiled() {
  return false;
}
std::unique_ptr<Communicator> make_nccl_communicator(MpiCommunicator& boot, int) {
  RAE_THROW("the NCCL backend needs a CUDA build (rank ", boot.rank(), ")");
}
}  // namespace rae::distributed
#endif
