// StagedWork: a Work made of collectives that run one after another (e.g. reduce-scatter inside
// a node, then all-reduce across nodes), then a host-side finish step (cast back from bf16,
// accumulate). test() advances stages without blocking, so polling it overlaps the stages with
// other work; wait() runs the rest in order. All ranks issue the stages in the same order.
#pragma once
#include <functional>
#include <vector>

#include "distributed/communicator.h"

namespace rae::distributed {

class StagedWork : public WorkImpl {
 public:
  StagedWork(std::vector<std::function<Work()>> stages, std::function<void()> finish)
      : stages_(std::move(stages)), finish_(std::move(finish)) {
    advance();
  }
  ~StagedWork() override {
    if (!done_) wait();
  }
  bool test() override {
    advance();
    return done_;
  }
  void wait() override { run(false); }
  void synchronize() override { run(true); }

 private:
  // Issues stages whose predecessors are complete; finishes after the last.
  void advance() {
    while (!done_) {
      if (current_.valid() && !current_.test()) return;
      if (!step()) return;
    }
  }
  void run(bool sync) {
    while (!done_) {
      if (current_.valid()) {
        if (sync)
          current_.synchronize();
        else
          current_.wait();
      }
      step();
    }
  }
  // The current stage is complete: issue the next or finish. Returns false when done.
  bool step() {
    if (next_ < stages_.size()) {
      current_ = stages_[next_++]();
      return true;
    }
    current_ = Work();
    if (finish_) finish_();
    done_ = true;
    return false;
  }

  std::vector<std::function<Work()>> stages_;
  std::function<void()> finish_;
  size_t next_ = 0;
  Work current_;
  bool done_ = false;
};

}  // namespace rae::distributed
