// The distributed side of `rae train` under mpirun / srun: the MPI world (watchdog timeout and
// node size from the [dist] config), the start-up consistency check of the effective config and
// the build, and the communicator the trainer uses: NCCL for CUDA training (dist.backend auto or
// nccl, one GPU per rank), else MPI (CPU tensors, or CUDA tensors staged through the host, e.g.
// two ranks sharing one GPU with dist.backend = mpi).
#pragma once
#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "train/config.h"

namespace rae::train {

class DistSession {
 public:
  // Null when this process was not started with several ranks (one process needs no MPI).
  // Collective otherwise; `config_text` is what every rank must agree on.
  static std::unique_ptr<DistSession> create(const TrainConfig& cfg,
                                             const std::string& config_text);
  ~DistSession();
  distributed::Communicator& comm() { return nccl_ ? *nccl_ : *world_; }
  // The MPI world (host tensors), for coordination outside the training collectives.
  distributed::MpiCommunicator& world() { return *world_; }
  // Logs the measured peak resident memory and finalizes MPI (success only).
  void finish();

 private:
  DistSession() = default;
  std::unique_ptr<distributed::MpiCommunicator> world_;
  std::unique_ptr<distributed::Communicator> nccl_;
};

}  // namespace rae::train
