// Communicator: the collective verbs that sharded data-parallel training needs, behind one
// interface with two backends: MpiCommunicator (CPU tensors, or CUDA tensors staged through the
// host) and NcclCommunicator (CUDA tensors, CUDA builds only). Every verb has an async form
// returning a Work handle; every blocking wait is guarded by the watchdog (distributed/watchdog.h),
// which aborts the whole job on a timeout instead of hanging.
//
// Rules shared by all backends:
// - Every rank of a communicator issues the same collectives in the same order.
// - Tensors are contiguous and live on the backend's device (MPI: CPU or CUDA); a Work keeps them
//   alive until done.
// - Reductions support F32, F64, BF16, I32, I64 (BF16 accumulates pairwise in f32, rounding each
//   partial sum to bf16, as NCCL does); gathers and broadcasts move any dtype.
// - Avg divides the sum by size() after the reduction (exact for power-of-two sizes).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::distributed {

enum class ReduceOp { Sum, Avg };
enum class CollectiveKind : int32_t {
  AllReduce = 1,
  ReduceScatter = 2,
  AllGather = 3,
  Broadcast = 4,
  Barrier = 5,
  Send = 6,  // point-to-point (MpiCommunicator::send_bytes / recv_bytes)
  Recv = 7
};
const char* collective_name(CollectiveKind k);

// Where a rank sits: world rank, and its place in the node (a "node" is a group of ranks sharing
// memory, from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), or a fixed-size group of consecutive
// ranks when DistOptions::node_size overrides it, e.g. to test hybrid sharding on one machine).
struct Topology {
  int rank = 0, size = 1;
  int local_rank = 0, local_size = 1;  // within the (possibly overridden) node
  int node_rank = 0, num_nodes = 1;
  int physical_local_rank = 0;  // within the real shared-memory node (picks the GPU)
  std::string str() const;
};

// Derives a topology from every rank's node id (any int naming its node; ranks with equal ids
// share a node). Node ranks number the nodes by their lowest rank.
Topology topology_from_node_ids(const std::vector<int>& node_ids, int rank,
                                const std::vector<int>& physical_node_ids);

// One outstanding collective. wait() blocks under the watchdog until the result may be used:
// for MPI the data is in host memory; for NCCL the calling compute stream is ordered after the
// collective (the host does not block; use synchronize() to block the host).
class WorkImpl {
 public:
  virtual ~WorkImpl() = default;
  virtual bool test() = 0;  // progresses; true once complete (and finished)
  virtual void wait() = 0;
  virtual void synchronize() { wait(); }
};

class Work {
 public:
  Work() = default;
  explicit Work(std::shared_ptr<WorkImpl> impl) : impl_(std::move(impl)) {}
  bool valid() const { return impl_ != nullptr; }
  bool test() { return !impl_ || impl_->test(); }
  void wait() {
    if (impl_) impl_->wait();
  }
  void synchronize() {
    if (impl_) impl_->synchronize();
  }

 private:
  std::shared_ptr<WorkImpl> impl_;
};

struct DistOptions {
  double timeout_s = 300;  // watchdog deadline of each blocking wait (--dist.timeout_s)
  int node_size = 0;       // > 0: ranks [k*node_size, (k+1)*node_size) form node k (tests)
  // Reads RAE_DIST_TIMEOUT_S and RAE_DIST_NODE_SIZE when set (tests and job scripts).
  static DistOptions from_env();
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  const Topology& topology() const { return topo_; }
  int rank() const { return topo_.rank; }
  int size() const { return topo_.size; }
  int local_rank() const { return topo_.local_rank; }
  int local_size() const { return topo_.local_size; }
  int node_rank() const { return topo_.node_rank; }
  int num_nodes() const { return topo_.num_nodes; }
  const std::string& label() const { return label_; }  // "world", "shard", "replicate"
  virtual const char* backend() const = 0;             // "mpi", "nccl"
  virtual Device device() const = 0;                   // where its tensors live

  // In place: `t` becomes the reduction over ranks.
  virtual Work all_reduce_async(const Tensor& t, ReduceOp op) = 0;
  // `in` has size() * out.numel() elements; rank r receives the reduction of chunk r.
  virtual Work reduce_scatter_async(const Tensor& in, const Tensor& out, ReduceOp op) = 0;
  // `out` has size() * in.numel() elements; chunk r is rank r's `in`. `in` may be chunk rank()
  // of `out` itself (in place).
  virtual Work all_gather_async(const Tensor& in, const Tensor& out) = 0;
  virtual Work broadcast_async(const Tensor& t, int root) = 0;
  virtual Work barrier_async() = 0;

  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::Sum) { all_reduce_async(t, op).wait(); }
  void reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::Sum) {
    reduce_scatter_async(in, out, op).wait();
  }
  void all_gather(const Tensor& in, const Tensor& out) { all_gather_async(in, out).wait(); }
  void broadcast(const Tensor& t, int root) { broadcast_async(t, root).wait(); }
  void barrier() { barrier_async().synchronize(); }

  // A communicator over the ranks passing the same `color`, ordered by `key` (collective over
  // this communicator; every rank must call it).
  virtual std::unique_ptr<Communicator> split(int color, int key, const std::string& label) = 0;

  // The CUDA stream whose work collectives wait for and that Work::wait orders after them
  // (a cudaStream_t; nullptr = the legacy default stream). Ignored by the MPI backend.
  virtual void set_compute_stream(void* stream) {}

 protected:
  Topology topo_;
  std::string label_ = "world";
};

// Checks shared by backends; messages name the collective, the communicator and the argument.
void check_collective_tensor(const Tensor& t, Device expect, const char* what, const char* arg,
                             const Communicator& comm);
bool dtype_reducible(DType t);

// Small host values through any backend (copied to the communicator's device and back), for
// coordination (losses, checkpoint bookkeeping). `comm` null: one process (the value itself).
std::vector<int64_t> all_gather_i64(Communicator* comm, const std::vector<int64_t>& mine);
int64_t broadcast_i64(Communicator* comm, int64_t value, int root = 0);
double sum_f64(Communicator* comm, double value);
void barrier(Communicator* comm);

// The step number printed in watchdog messages: the trainer sets it at the start of each step,
// 1-based as its logs and metrics.jsonl count (0: start-up, before the first step).
void set_step(int64_t step);
int64_t current_step();

}  // namespace rae::distributed
