// MPI backend: nonblocking MPI_I* collectives on CPU tensors, waits under the watchdog. CUDA
// tensors are accepted too, staged through host copies (inputs copied when the collective is
// issued, outputs copied back when it completes): that is how two ranks share one GPU in the
// device check, which NCCL refuses.
// BF16 reductions use a user-defined MPI op that adds in f32 and rounds to bf16.
// MPI has no progress thread here: an outstanding Work advances when any wait/test is called,
// so a trainer overlapping CPU compute with communication should test() its handles between
// layers.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace rae::distributed {

class MpiCommunicator : public Communicator {
 public:
  // Initializes MPI if needed (MPI_THREAD_MULTIPLE requested, so the NCCL watchdog thread may
  // abort the job), installs the watchdog (timeout, MPI_Abort, node progress board) and returns
  // a communicator over a duplicate of MPI_COMM_WORLD. Works without mpirun (one rank).
  static std::unique_ptr<MpiCommunicator> create_world(
      const DistOptions& opts = DistOptions::from_env());
  ~MpiCommunicator() override;

  const char* backend() const override { return "mpi"; }
  Device device() const override { return Device::cpu(); }
  MPI_Comm handle() const { return comm_; }

  Work all_reduce_async(const Tensor& t, ReduceOp op) override;
  Work reduce_scatter_async(const Tensor& in, const Tensor& out, ReduceOp op) override;
  Work all_gather_async(const Tensor& in, const Tensor& out) override;
  Work broadcast_async(const Tensor& t, int root) override;
  Work barrier_async() override;
  std::unique_ptr<Communicator> split(int color, int key, const std::string& label) override;

  // Point-to-point byte messages (coordinator/worker jobs such as `rae cache`), waited for under
  // the watchdog like the collectives: a peer that never answers ends the job after the timeout.
  void send_bytes(const void* data, size_t bytes, int dest, int tag);
  // The next message with `tag` from `source` (-1: any rank); `from` gets the sender.
  std::vector<char> recv_bytes(int tag, int source = -1, int* from = nullptr);
  // Same as split, keeping the MPI type (NCCL communicators bootstrap from these).
  std::unique_ptr<MpiCommunicator> split_mpi(int color, int key, const std::string& label);

  int node_id() const { return node_id_; }
  int physical_node_id() const { return physical_node_id_; }

 private:
  MpiCommunicator(MPI_Comm comm, const std::string& label, int node_id, int physical_node_id);
  int64_t next_seq() { return ++seq_; }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int node_id_ = 0, physical_node_id_ = 0;  // node ids (lowest world rank of the node)
  int64_t seq_ = 0;
};

// True when this process was started by mpirun/srun with more than one rank.
bool launched_with_several_ranks();

// Ends the distributed runtime after a watchdog-guarded barrier on `world` (so no rank waits
// forever in MPI_Finalize). Call on success only: on an error, return a non-zero exit code
// without finalizing and mpirun ends the whole job.
void finalize(Communicator& world);

// Ends the job from any rank now (MPI_Abort on MPI_COMM_WORLD).
[[noreturn]] void abort_job(int code);

}  // namespace rae::distributed
