// Watchdog: no collective may hang. Every blocking wait polls its completion test with backoff
// against a deadline; past it, the rank prints what it waited for (rank, step, collective,
// communicator, bytes) and the state of every peer on its node, then aborts the whole job.
//
// Peer state comes from a "progress board": one slot per process in node-shared memory (an MPI
// shared window set up with the world communicator), written with relaxed atomics when a rank
// issues, waits for and completes a collective. Reading it needs no progress from the peers, so
// a dead or stuck peer can still be described ("pid gone", "computing for 31 s", "waiting in
// world.all_reduce #12").
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "distributed/communicator.h"

namespace rae::distributed::watchdog {

struct CollectiveInfo {
  const char* comm_label = "";  // owned by the communicator, outlives the wait
  CollectiveKind kind = CollectiveKind::Barrier;
  int64_t seq = 0;  // per-communicator collective number (same on every rank)
  int64_t bytes = 0;
  DType dtype = DType::F32;
  int comm_rank = 0, comm_size = 1;
};

// Deadline of every wait, in seconds (> 0). Set from DistOptions by the world communicator.
void set_timeout(double seconds);
double timeout();

// How the job is ended (MPI_Abort once MPI is up); hooks run first (e.g. ncclCommAbort).
void set_abort_function(std::function<void(int code)> abort_job);
int add_abort_hook(std::function<void()> hook);  // returns an id for remove_abort_hook
void remove_abort_hook(int id);
constexpr int kTimeoutExitCode = 3;

// Progress board: `slots` points to node-shared memory holding `nslots` slots (slot_bytes() each,
// zeroed), `my_slot` is this process's, `world_ranks[i]` names slot i's owner.
size_t slot_bytes();
void attach_board(void* slots, int nslots, int my_slot, std::vector<int> world_ranks);
void detach_board();

void note_step(int64_t step);
void note_issued(const CollectiveInfo& info);
void note_completed(const CollectiveInfo& info);

// Blocks until done() is true, polling with backoff (yield, then sleeps growing to 1 ms).
// On the deadline: report and abort the job (never returns then).
void wait_until(const std::function<bool()>& done, const CollectiveInfo& info);

// Prints the report for `info` (waited `waited_s`) plus `detail`, runs the hooks, ends the job.
[[noreturn]] void fire(const CollectiveInfo& info, double waited_s, const std::string& detail = "");

// The peer-state part of the report (exposed for tests).
std::string describe_peers();

}  // namespace rae::distributed::watchdog
