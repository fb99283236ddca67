// GoogleTest environment for tests that run under mpirun (and alone, as one rank): initializes
// the distributed runtime once, gives tests the world communicator, finalizes at the end.
// Ranks other than 0 print only failures, prefixed by their rank.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "distributed/mpi_communicator.h"

namespace rae::test {

class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    DistOptions opts = DistOptions::from_env();
    if (!std::getenv("RAE_DIST_TIMEOUT_S")) opts.timeout_s = 60;  // a test bug aborts, not hangs
    world_ = distributed::MpiCommunicator::create_world(opts);
  }
  void TearDown() override {
    distributed::finalize(*world_);
    world_.reset();
  }
  static distributed::MpiCommunicator& world() { return *world_; }

 private:
  using DistOptions = distributed::DistOptions;
  static inline std::unique_ptr<distributed::MpiCommunicator> world_;
};

// Prints failed assertions of a non-zero rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] FAILED %s:%d: %s\n", rank_,
                   r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }

 private:
  int rank_;
};

inline bool register_mpi_environment() {
  ::testing::AddGlobalTestEnvironment(new MpiEnvironment);
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  int rank = r ? std::atoi(r) : 0;
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  return true;
}
inline const bool kMpiEnvironmentRegistered = register_mpi_environment();

inline distributed::MpiCommunicator& world() {
  return MpiEnvironment::world();
}

}  // namespace rae::test
