#include "train/stop_request.h"

#include <signal.h>

#include <atomic>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "distributed/communicator.h"
#include "tensor/tensor.h"

namespace rae::train {

namespace {

// Written by the signal handler: lock-free atomics are async-signal-safe.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<bool> g_agreed{false};
distributed::Communicator* g_comm = nullptr;

extern "C" void on_stop_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);  // the first signal is the one reported
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGUSR1:
      return "SIGUSR1";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal";
  }
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: a write or fsync interrupted by the signal resumes instead of failing, so a
  // checkpoint being written when the signal arrives completes.
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGUSR1, SIGTERM})
    RAE_CHECK(sigaction(sig, &sa, nullptr) == 0, "cannot install the handler for signal ", sig);
}

int stop_signal() {
  return g_signal.load();
}

void request_stop(int sig) {
  on_stop_signal(sig);
}

void reset_stop_request() {
  g_signal.store(0);
  g_agreed.store(false);
}

void set_stop_communicator(distributed::Communicator* comm) {
  g_comm = comm;
}

bool stop_at_step_boundary() {
  const int mine = stop_signal();
  int64_t ranks_signalled = mine != 0 ? 1 : 0;
  if (g_comm != nullptr && g_comm->size() > 1) {
    // One 4-byte all-reduce per step: microseconds next to a training step.
    Tensor flag = Tensor::empty({1}, DType::I32);
    flag.data<int32_t>()[0] = mine != 0 ? 1 : 0;
    g_comm->all_reduce(flag, distributed::ReduceOp::Sum);
    ranks_signalled = flag.data<int32_t>()[0];
  }
  if (ranks_signalled > 0 && !g_agreed.exchange(true)) {
    const int rank = g_comm ? g_comm->rank() : 0;
    if (rank == 0)
      log::info("stop requested (", mine ? signal_name(mine) : "a signal on another rank", ", ",
                ranks_signalled, " rank(s) signalled): checkpointing this step and exiting with ",
                kExitStopped);
  }
  return g_agreed.load();
}

bool stop_agreed() {
  return g_agreed.load();
}

StopScope::StopScope(distributed::Communicator* comm) {
  install_stop_handlers();
  set_stop_communicator(comm);
}

StopScope::~StopScope() {
  set_stop_communicator(nullptr);
}

int StopScope::exit_status(bool finished) const {
  return !finished && stop_agreed() ? kExitStopped : 0;
}

}  // namespace rae::train
