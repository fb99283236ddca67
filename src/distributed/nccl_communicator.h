// NCCL backend (CUDA builds): one rank per GPU, the NCCL unique id broadcast over MPI, collectives
// on a dedicated communication stream ordered against the compute stream with events. A watchdog
// thread watches every outstanding collective; past the deadline (or on an asynchronous NCCL
// error) it reports, calls ncclCommAbort and aborts the job. Without CUDA the factory throws.
#pragma once
#include <memory>

#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"

namespace rae::distributed {

bool nccl_compiled();

// Collective over `boot`: a NCCL communicator over the same ranks, in the same order, on GPU
// `device` (-1: the rank's physical local rank modulo the number of GPUs).
std::unique_ptr<Communicator> make_nccl_communicator(MpiCommunicator& boot, int device = -1);

}  // namespace rae::distributed
