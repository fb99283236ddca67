// Per-op timing of the op layer: what `step_bench_cuda --profile` prints. Every op called through
// its dispatch point (RAE_DISPATCH, ops/dispatch.h) opens a Scope; while profiling is on, the
// outermost scope of each call is timed: CUDA events on the legacy default stream (the stream
// every CUDA op runs on) for CUDA tensors, the host clock for CPU tensors (the CPU ops are
// synchronous). Nested op calls count towards the outer one. Code outside the op layer can time
// its own device work under a name of its choice (Scope("zero_fill", t) in nn::Arena::zeros).
//
// Cost: the CMake option RAE_OP_PROFILE (default ON) compiles the hook in; with it OFF a Scope is
// an empty object and RAE_DISPATCH has no hook at all. Compiled in but not started, a dispatch
// pays one relaxed atomic load. While on, each timed call records two events (a few
// microseconds of host time), so a profiled step is slightly slower than an unprofiled one: the
// benchmark profiles an extra step after the timed ones.
//
// Use: start(); ...ops...; std::vector<OpTime> t = stop();  (stop() synchronizes the device).
// Not for use inside a CUDA graph capture (the events would be captured, not recorded).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::ops::profile {

// Totals per name over the calls made between start() and stop().
struct OpTime {
  std::string op;
  int64_t calls = 0;
  double ms = 0;     // GPU time (CUDA) or host time (CPU) of the calls
  double flops = 0;  // FLOPs the calls declared (add_flops), 2 per multiply-add; 0 if none
  bool cuda = false;
};

#ifdef RAE_OP_PROFILE
extern std::atomic<bool> g_on;
inline bool on() {
  return g_on.load(std::memory_order_relaxed);
}
#else
inline bool on() {
  return false;
}
#endif

// Turns profiling on with empty totals. Throws where the hook was compiled out.
void start();
// Turns it off, waits for the device, and returns the totals sorted by time (largest first).
std::vector<OpTime> stop();
// Attributes `flops` to the outermost scope open on this thread (a GEMM's 2*M*N*K); no-op when
// profiling is off or no scope is open.
void add_flops(double flops);
// Whether the hook is compiled in (RAE_OP_PROFILE).
bool compiled_in();

class Scope {
 public:
#ifdef RAE_OP_PROFILE
  // `op` must outlive the profile (a string literal); `t` tells the device; `flops` as for
  // add_flops.
  Scope(const char* op, const Tensor& t, double flops = 0) {
    if (on()) begin(op, t, flops);
  }
  ~Scope() {
    if (entered_) end();
  }
#else
  Scope(const char*, const Tensor&, double = 0) {}
#endif
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
#ifdef RAE_OP_PROFILE
  void begin(const char* op, const Tensor& t, double flops);
  void end();
  bool entered_ = false;  // begin() ran: end() must run
  int64_t rec_ = -1;      // index of this call's record, -1: not timed (nested in another op)
#endif
};

// A printable table: op, calls, ms, % of `step_ms`, TFLOP/s where FLOPs were declared, and a
// final row "(outside ops)" with step_ms minus the ops' sum (copies, host work, launch gaps of
// the host waiting). step_ms <= 0: no percentages.
std::string format_table(const std::vector<OpTime>& ops, double step_ms);

}  // namespace rae::ops::profile
