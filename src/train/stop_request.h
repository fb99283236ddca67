// Stop requests: a training run that receives SIGUSR1 (Slurm's warning before a time limit,
// `--signal=B:USR1@N` forwarded by cluster/slurm) or SIGTERM (scancel, preemption,
// `scontrol requeue`) finishes the step it is in, writes a checkpoint and ends with
// kExitStopped, so the batch script can requeue it and the next job resumes from that step.
//
// Every rank stops at the same step. Ranks receive the signal at different moments (or only
// some of them receive it), so the signal handler only records it; at each step boundary all
// ranks agree with one 4-byte all-reduce (stop_at_step_boundary), and the checkpoint that
// follows is written by all of them for the same step (as Megatron-LM's exit-signal handler).
// The handler does nothing else: a signal arriving during a checkpoint write, or a second signal
// during the save, leaves the write to finish (SA_RESTART resumes interrupted system calls).
//
// Use in a training command (rae train; rae decoder-train the same way):
//   train::StopScope stop(world);               // before training: handlers + communicator
//   ... at every step boundary, after the periodic checkpoint:
//   if (train::stop_at_step_boundary()) { save a checkpoint unless this step has one; break; }
//   ... at the end:
//   return stop.exit_status(finished);          // kExitStopped when stopped before the end
#pragma once

namespace rae::distributed {
class Communicator;
}

namespace rae::train {

// Exit status of a run that stopped early on a signal after writing its checkpoint
// (EX_TEMPFAIL of sysexits.h: "try again later"). cluster/slurm requeues the job on it.
inline constexpr int kExitStopped = 75;

// Installs the SIGUSR1 and SIGTERM handlers (idempotent). They only record the signal.
void install_stop_handlers();
// The first stop signal this process received, or 0.
int stop_signal();
// Records a stop request as a signal would (tests; an in-process reason to stop).
void request_stop(int sig);
// Forgets a recorded request and any agreement (tests; a new run in the same process).
void reset_stop_request();

// The communicator the step-boundary agreement runs over: every rank of the training job, on
// the CPU (an MPI communicator). nullptr: this process alone (no collective).
void set_stop_communicator(distributed::Communicator* comm);

// Collective over the stop communicator: every rank calls it at every step boundary, in the
// same order relative to its other collectives. True on every rank iff any rank has received a
// stop signal; once true it stays true (later calls still take part in the collective).
bool stop_at_step_boundary();
// True once stop_at_step_boundary() has returned true in this process.
bool stop_agreed();

// A command's stop handling: installs the handlers and sets the communicator for its lifetime.
class StopScope {
 public:
  explicit StopScope(distributed::Communicator* comm);
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;
  // 0 when the run finished its steps (even if a signal came after the last step boundary),
  // kExitStopped when it stopped early on an agreed stop request.
  int exit_status(bool finished) const;
};

}  // namespace rae::train
