// dist_fault MODE: scenarios where a job must END (non-zero, in bounded time), never hang.
// Run under mpirun by tests/distributed/tests.cmake through expect_failure.sh.
//   ok        every rank runs 20 all-reduces and finalizes (exit 0; the control)
//   sleep     rank 1 sleeps 600 s before its all-reduce: the others' watchdog fires
//   sigkill   the last rank SIGKILLs itself mid-run: mpirun (and the watchdog) end the job
//   config    rank 1 has another config: every rank fails the start-up check
//   stuck     every rank but 0 waits in a barrier that rank 0 never enters (rank 0 computes)
//   hook      as sleep, with an abort hook that never returns (as ncclCommAbort on a stalled
//             stream): the watchdog must still end the job
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "distributed/consistency.h"
#include "distributed/mpi_communicator.h"
#include "distributed/watchdog.h"

using namespace rae;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dist_fault ok|sleep|sigkill|config|stuck|hook\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
    auto world = distributed::MpiCommunicator::create_world(distributed::DistOptions::from_env());
    const int rank = world->rank(), size = world->size();
    if (mode == "hook")
      distributed::watchdog::add_abort_hook(
          [] { std::this_thread::sleep_for(std::chrono::seconds(600)); });
    distributed::check_consistency(*world, mode == "config" && rank == 1 ? "lr=2e-4" : "lr=1e-4");
    Tensor t = Tensor::full({1024}, 1.0);
    for (int step = 0; step < 20; ++step) {
      distributed::set_step(step);
      if ((mode == "sleep" || mode == "hook") && rank == 1 && step == 3)
        std::this_thread::sleep_for(std::chrono::seconds(600));
      if (mode == "sigkill" && rank == size - 1 && step == 3) {
        std::fprintf(stderr, "rank %d: SIGKILL myself at step %d\n", rank, step);
        std::fflush(stderr);
        ::raise(SIGKILL);
      }
      if (mode == "stuck" && step == 2) {
        if (rank == 0) std::this_thread::sleep_for(std::chrono::seconds(600));
        world->barrier();
      }
      world->all_reduce(t, distributed::ReduceOp::Avg);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (rank == 0) std::printf("dist_fault %s: %d ranks finished\n", mode.c_str(), size);
    distributed::finalize(*world);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_fault: error: %s\n", e.what());
    return 1;  // no finalize: mpirun ends the job
  }
}
