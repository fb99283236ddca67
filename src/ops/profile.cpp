#include "ops/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include "core/error.h"
#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace rae::ops::profile {

bool compiled_in() {
#ifdef RAE_OP_PROFILE
  return true;
#else
  return false;
#endif
}

#ifdef RAE_OP_PROFILE

std::atomic<bool> g_on{false};

namespace {

using Clock = std::chrono::steady_clock;

// One timed call: CUDA events a and b (indices into the pool) or two host clock readings.
struct Rec {
  const char* op;
  bool cuda;
  double flops = 0;
  int a = -1, b = -1;
  Clock::time_point t0, t1;
};

struct State {
  std::mutex mu;
  std::vector<Rec> recs;
#ifdef RAE_WITH_CUDA
  std::vector<cudaEvent_t> events;  // created on first use, reused by later profiles
  size_t used = 0;
  int record_event() {
    if (used == events.size()) {
      cudaEvent_t e;
      cudaError_t rc = cudaEventCreate(&e);
      RAE_CHECK(rc == cudaSuccess, "op profile: cudaEventCreate: ", cudaGetErrorString(rc));
      events.push_back(e);
    }
    cudaError_t rc = cudaEventRecord(events[used], 0);  // the ops' stream (legacy default)
    RAE_CHECK(rc == cudaSuccess, "op profile: cudaEventRecord: ", cudaGetErrorString(rc));
    return static_cast<int>(used++);
  }
#endif
};

State& state() {
  static State* s = new State();  // never destroyed: ops may run during static destruction
  return *s;
}

// The outermost open scope of this thread (its record), and how deep the nesting is.
thread_local int t_depth = 0;
thread_local int64_t t_open = -1;

}  // namespace

void start() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.recs.clear();
#ifdef RAE_WITH_CUDA
  s.used = 0;
#endif
  g_on.store(true);
}

std::vector<OpTime> stop() {
  g_on.store(false);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::map<std::pair<std::string, bool>, OpTime> by_op;
#ifdef RAE_WITH_CUDA
  bool any_cuda = std::any_of(s.recs.begin(), s.recs.end(), [](const Rec& r) { return r.cuda; });
  if (any_cuda) {
    cudaError_t rc = cudaDeviceSynchronize();
    RAE_CHECK(rc == cudaSuccess, "op profile: cudaDeviceSynchronize: ", cudaGetErrorString(rc));
  }
#endif
  for (const Rec& r : s.recs) {
    if (r.cuda && (r.a < 0 || r.b < 0)) continue;  // a scope still open at stop()
    OpTime& o = by_op[{r.op, r.cuda}];
    o.op = r.op;
    o.cuda = r.cuda;
    ++o.calls;
    o.flops += r.flops;
    if (r.cuda) {
#ifdef RAE_WITH_CUDA
      float ms = 0;
      cudaError_t rc = cudaEventElapsedTime(&ms, s.events[r.a], s.events[r.b]);
      RAE_CHECK(rc == cudaSuccess, "op profile: cudaEventElapsedTime: ", cudaGetErrorString(rc));
      o.ms += ms;
#endif
    } else {
      o.ms += std::chrono::duration<double, std::milli>(r.t1 - r.t0).count();
    }
  }
  s.recs.clear();
  std::vector<OpTime> out;
  for (auto& [k, v] : by_op) out.push_back(v);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.ms > b.ms; });
  return out;
}

void add_flops(double flops) {
  if (!on() || t_open < 0) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (t_open < static_cast<int64_t>(s.recs.size()))
    s.recs[static_cast<size_t>(t_open)].flops += flops;
}

void Scope::begin(const char* op, const Tensor& t, double flops) {
  entered_ = true;
  if (t_depth++ > 0) {  // nested: counted in the outer call
    add_flops(flops);
    return;
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  Rec r;
  r.op = op;
  r.flops = flops;
  r.cuda = t.defined() && t.is_cuda();
  if (r.cuda) {
#ifdef RAE_WITH_CUDA
    r.a = s.record_event();
#endif
  } else {
    r.t0 = Clock::now();
  }
  s.recs.push_back(r);
  rec_ = static_cast<int64_t>(s.recs.size()) - 1;
  t_open = rec_;
}

void Scope::end() {
  --t_depth;
  if (rec_ < 0) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  t_open = -1;
  if (rec_ >= static_cast<int64_t>(s.recs.size())) return;  // restarted meanwhile
  Rec& r = s.recs[static_cast<size_t>(rec_)];
  if (r.cuda) {
#ifdef RAE_WITH_CUDA
    r.b = s.record_event();
#endif
  } else {
    r.t1 = Clock::now();
  }
}

#else  // RAE_OP_PROFILE off

void start() {
  RAE_THROW("op profile: built without the profiling hook (configure with -DRAE_OP_PROFILE=ON)");
}
std::vector<OpTime> stop() {
  return {};
}
void add_flops(double) {}

#endif

std::string format_table(const std::vector<OpTime>& ops, double step_ms) {
  std::string s;
  char line[256];
  std::snprintf(line, sizeof line, "%-34s %7s %10s %7s %9s\n", "op", "calls", "ms", "% step",
                "TFLOP/s");
  s += line;
  double sum = 0;
  for (const OpTime& o : ops) {
    sum += o.ms;
    char pct[16] = "-", tf[16] = "-";
    if (step_ms > 0) std::snprintf(pct, sizeof pct, "%.1f", 100.0 * o.ms / step_ms);
    if (o.flops > 0 && o.ms > 0) std::snprintf(tf, sizeof tf, "%.1f", o.flops / (o.ms * 1e9));
    std::snprintf(line, sizeof line, "%-34s %7lld %10.3f %7s %9s\n",
                  (o.op + (o.cuda ? "" : " (cpu)")).c_str(), static_cast<long long>(o.calls), o.ms,
                  pct, tf);
    s += line;
  }
  if (step_ms > 0) {
    std::snprintf(line, sizeof line, "%-34s %7s %10.3f %7.1f %9s\n", "(outside ops)", "",
                  step_ms - sum, 100.0 * (step_ms - sum) / step_ms, "-");
    s += line;
    std::snprintf(line, sizeof line, "%-34s %7s %10.3f %7s %9s\n", "step", "", step_ms, "100.0",
                  "-");
    s += line;
  }
  return s;
}

}  // namespace rae::ops::profile
