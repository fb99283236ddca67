#include "distributed/watchdog.h"

#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace rae::distributed::watchdog {
namespace {

// One process's row on the board. Plain integers accessed through std::atomic_ref, so the
// layout is the same in every process mapping the window.
struct Slot {
  int64_t pid;
  int64_t world_rank;
  int64_t step;
  int64_t issued;         // collectives issued by this process (all communicators)
  int64_t completed;      // ... and completed
  int64_t waiting_since;  // monotonic ns when the current blocking wait began; 0 when not waiting
  int64_t last_activity;  // monotonic ns of the last issue/complete/wait
  int64_t finished;       // 1 once the process left the distributed runtime normally
  char waiting_on[64];    // "world.all_reduce #12" while waiting
  char last_completed[64];
  char last_issued[64];
};

std::atomic<double> g_timeout_s{300.0};
std::mutex g_mu;
std::function<void(int)> g_abort;
std::vector<std::pair<int, std::function<void()>>> g_hooks;
int g_next_hook = 0;

Slot* g_slots = nullptr;
int g_nslots = 0, g_my_slot = -1;
std::vector<int> g_world_ranks;

constexpr int kHookMillis = 3000;     // time given to abort hooks before MPI_Abort
constexpr int kHardStopSeconds = 10;  // then the process exits whatever is still blocking

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // system-wide on Linux: comparable across processes
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void store(int64_t& field, int64_t v) {
  std::atomic_ref<int64_t>(field).store(v, std::memory_order_relaxed);
}
int64_t load(int64_t& field) {
  return std::atomic_ref<int64_t>(field).load(std::memory_order_relaxed);
}

// Byte-wise copy so a concurrent reader sees at worst a mixed string, never out-of-bounds.
void store_text(char* dst, const std::string& s) {
  size_t n = std::min(s.size(), size_t{63});
  for (size_t i = 0; i < n; ++i)
    std::atomic_ref<char>(dst[i]).store(s[i], std::memory_order_relaxed);
  std::atomic_ref<char>(dst[n]).store(0, std::memory_order_relaxed);
}
std::string load_text(char* src) {
  std::string s;
  for (size_t i = 0; i < 63; ++i) {
    char c = std::atomic_ref<char>(src[i]).load(std::memory_order_relaxed);
    if (!c) break;
    s += c;
  }
  return s;
}

std::string describe(const CollectiveInfo& info) {
  std::ostringstream os;
  os << info.comm_label << "." << collective_name(info.kind) << " #" << info.seq;
  return os.str();
}

// Steps are numbered from 1 as the trainer logs them (distributed::set_step); 0 is the start-up
// (consistency check, parameter broadcast) before the first step.
std::string step_text(int64_t step) {
  return step > 0 ? "step " + std::to_string(step) : std::string("before the first step");
}

Slot* mine() {
  return g_slots && g_my_slot >= 0 ? &g_slots[g_my_slot] : nullptr;
}

}  // namespace

void set_timeout(double seconds) {
  RAE_CHECK(seconds > 0, "dist timeout must be > 0 seconds, got ", seconds);
  g_timeout_s = seconds;
}
double timeout() {
  return g_timeout_s;
}

void set_abort_function(std::function<void(int)> abort_job) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_abort = std::move(abort_job);
}
int add_abort_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_hooks.emplace_back(++g_next_hook, std::move(hook));
  return g_next_hook;
}
void remove_abort_hook(int id) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::erase_if(g_hooks, [id](const auto& h) { return h.first == id; });
}

size_t slot_bytes() {
  return sizeof(Slot);
}

void attach_board(void* slots, int nslots, int my_slot, std::vector<int> world_ranks) {
  g_slots = static_cast<Slot*>(slots);
  g_nslots = nslots;
  g_my_slot = my_slot;
  g_world_ranks = std::move(world_ranks);
  Slot* s = mine();
  store(s->pid, ::getpid());
  store(s->world_rank, g_world_ranks[my_slot]);
  store(s->last_activity, now_ns());
}

void detach_board() {
  if (Slot* s = mine()) store(s->finished, 1);
  g_slots = nullptr;
  g_nslots = 0;
  g_my_slot = -1;
}

void note_step(int64_t step) {
  if (Slot* s = mine()) store(s->step, step);
}

void note_issued(const CollectiveInfo& info) {
  Slot* s = mine();
  if (!s) return;
  store(s->step, current_step());
  store(s->issued, load(s->issued) + 1);
  store(s->last_activity, now_ns());
  store_text(s->last_issued, describe(info));
}

void note_completed(const CollectiveInfo& info) {
  Slot* s = mine();
  if (!s) return;
  store(s->completed, load(s->completed) + 1);
  store(s->last_activity, now_ns());
  store_text(s->last_completed, describe(info));
}

void wait_until(const std::function<bool()>& done, const CollectiveInfo& info) {
  if (done()) return;
  const int64_t start = now_ns();
  const int64_t deadline = start + static_cast<int64_t>(timeout() * 1e9);
  Slot* s = mine();
  if (s) {
    store_text(s->waiting_on, describe(info));
    store(s->step, current_step());
    store(s->waiting_since, start);
    store(s->last_activity, start);
  }
  int polls = 0;
  int64_t sleep_us = 20;
  while (!done()) {
    int64_t t = now_ns();
    if (t > deadline) fire(info, (t - start) * 1e-9);
    if (++polls < 200) {
      sched_yield();  // cheap while the peers are about to arrive (and fair when oversubscribed)
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      sleep_us = std::min<int64_t>(sleep_us * 2, 1000);
    }
  }
  if (s) {
    store(s->waiting_since, 0);
    store(s->last_activity, now_ns());
  }
}

std::string describe_peers() {
  if (!g_slots) return "  (no progress board: peer state unknown)\n";
  std::ostringstream os;
  const int64_t t = now_ns();
  for (int i = 0; i < g_nslots; ++i) {
    if (i == g_my_slot) continue;
    Slot& p = g_slots[i];
    int64_t pid = load(p.pid);
    os << "  rank " << g_world_ranks[i] << " (pid " << pid << ", " << step_text(load(p.step))
       << "): ";
    bool alive = pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
    int64_t waiting = load(p.waiting_since);
    std::string last = load_text(p.last_completed);
    if (load(p.finished)) {
      os << "left the distributed runtime";
    } else if (!alive) {
      os << "PROCESS GONE (killed or crashed)";
    } else if (waiting) {
      os << "waiting in " << load_text(p.waiting_on) << " for " << (t - waiting) * 1e-9 << " s";
    } else {
      os << "not in a collective wait for " << (t - load(p.last_activity)) * 1e-9
         << " s (computing, stuck, or issued but not yet waiting)";
    }
    os << "; issued " << load(p.issued) << " (last " << load_text(p.last_issued) << "), completed "
       << load(p.completed) << " (last " << (last.empty() ? "-" : last) << ")\n";
  }
  if (g_nslots <= 1) os << "  (no other rank on this node)\n";
  return os.str();
}

void fire(const CollectiveInfo& info, double waited_s, const std::string& detail) {
  // Only the first caller (the waiting thread or the NCCL watchdog thread) ends the job; a
  // second one parks until the process is gone.
  static std::atomic<bool> fired{false};
  if (fired.exchange(true)) {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  int world_rank = g_my_slot >= 0 ? g_world_ranks[g_my_slot] : -1;
  std::ostringstream os;
  os << "\n[rae dist watchdog] rank " << world_rank << " (pid " << ::getpid() << "), "
     << step_text(current_step()) << ": collective " << describe(info) << " (" << info.bytes
     << " bytes " << dtype_name(info.dtype) << ", comm rank " << info.comm_rank << "/"
     << info.comm_size << ") did not complete within " << waited_s << " s (timeout " << timeout()
     << " s: rae train --dist.timeout_s, rae cache --timeout-s).\n";
  if (!detail.empty()) os << "  " << detail << "\n";
  os << "  peers on this node:\n" << describe_peers();
  os << "  aborting the job.\n";
  std::string msg = os.str();
  std::fputs(msg.c_str(), stderr);
  std::fflush(stderr);
  // Whatever blocks below, the process ends: ncclCommAbort was measured to wait ~30 s for a
  // stalled stream (H200), and MPI_Abort could hang on a broken transport.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(kHardStopSeconds));
    std::fputs("[rae dist watchdog] abort did not finish; exiting\n", stderr);
    std::_Exit(kTimeoutExitCode);
  }).detach();
  std::vector<std::pair<int, std::function<void()>>> hooks;
  std::function<void(int)> abort_job;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    hooks = g_hooks;
    abort_job = g_abort;
  }
  // Hooks (ncclCommAbort) get a bounded time in their own thread, then the job is aborted.
  auto hooks_done = std::make_shared<std::atomic<bool>>(false);
  std::thread([hooks, hooks_done] {
    for (auto& h : hooks) h.second();
    *hooks_done = true;
  }).detach();
  for (int i = 0; i < kHookMillis / 10 && !*hooks_done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (abort_job) abort_job(kTimeoutExitCode);
  std::_Exit(kTimeoutExitCode);
}

}  // namespace rae::distributed::watchdog
