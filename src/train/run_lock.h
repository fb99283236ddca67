// One trainer per run directory. Two trainers writing one run directory would interleave their
// checkpoints and metrics; the second one must stop at start, naming the first.
//
// The lock is an flock(2) on <run_dir>/.rae-train.lock, held by world rank 0 of a job for the
// life of the process and released by the kernel when it exits or dies (SIGKILL included), so a
// crashed trainer never leaves a stale lock. The file records the holder (pid, host, start time,
// command line) for the error message of the next one. On file systems without flock support
// (Lustre mounted without -o flock) the run continues unlocked, with a warning.
#pragma once
#include <memory>
#include <string>

namespace rae::train {

constexpr const char* kRunLockFile = ".rae-train.lock";

class RunLock {
 public:
  // Creates run_dir if needed and takes the lock; throws naming the holder when another process
  // has it.
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// The lock for `rank` of a job: rank 0 takes it, other ranks get nullptr (they share it).
std::unique_ptr<RunLock> lock_run_dir(const std::string& run_dir, int rank);

}  // namespace rae::train
