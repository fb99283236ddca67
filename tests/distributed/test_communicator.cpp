// MpiCommunicator collectives. Run alone (one rank, via ctest's discovered tests) and under
// `mpirun -np 2|3|4` (tests/distributed/tests.cmake). Values are small integers so that sums are
// exact in every dtype (bf16 holds integers up to 256 exactly): the expected results are exact.
#include <gtest/gtest.h>

#include <vector>

#include "distributed/consistency.h"
#include "distributed/mpi_communicator.h"
#include "mpi_env.h"
#include "support/util.h"

namespace rae {
namespace {

using distributed::ReduceOp;
using test::world;

// Element i of rank r's input: small integers, different on every rank.
double value(int r, int64_t i) {
  return static_cast<double>((r + 1) * ((i % 7) + 1));
}

Tensor rank_tensor(int r, int64_t n, DType dtype) {
  Tensor t = Tensor::empty({n}, DType::F64);
  for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = value(r, i);
  return t.cast(dtype);
}

// Sum over ranks of value(r, i).
double sum_value(int size, int64_t i) {
  double s = 0;
  for (int r = 0; r < size; ++r) s += value(r, i);
  return s;
}

const std::vector<int64_t> kSizes = {1, 7, 1000, 65537};

TEST(Communicator, TopologyIsConsistent) {
  auto& w = world();
  const auto& t = w.topology();
  EXPECT_EQ(t.rank, w.rank());
  EXPECT_GE(t.size, 1);
  // Every test rank runs on this one machine: one shared-memory node, unless the node size is
  // overridden (RAE_DIST_NODE_SIZE) to form nodes of consecutive ranks.
  const int node = distributed::DistOptions::from_env().node_size > 0
                       ? distributed::DistOptions::from_env().node_size
                       : t.size;
  EXPECT_EQ(t.num_nodes, t.size / node);
  EXPECT_EQ(t.local_size, node);
  EXPECT_EQ(t.local_rank, t.rank % node);
  EXPECT_EQ(t.node_rank, t.rank / node);
  EXPECT_EQ(t.physical_local_rank, t.rank);
  EXPECT_STREQ(w.backend(), "mpi");
}

TEST(Communicator, NodeSizeOverrideMakesHybridTopology) {
  auto& w = world();
  if (w.size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  distributed::DistOptions o;
  o.timeout_s = 60;
  o.node_size = 2;
  auto w2 = distributed::MpiCommunicator::create_world(o);
  EXPECT_EQ(w2->local_size(), 2);
  EXPECT_EQ(w2->local_rank(), w.rank() % 2);
  EXPECT_EQ(w2->node_rank(), w.rank() / 2);
  EXPECT_EQ(w2->num_nodes(), w.size() / 2);
  EXPECT_EQ(w2->topology().physical_local_rank, w.rank());
}

TEST(Communicator, TopologyFromNodeIds) {
  // Nodes named by arbitrary ids, numbered by their lowest rank.
  std::vector<int> ids = {7, 7, 3, 3, 7};
  auto t = distributed::topology_from_node_ids(ids, 4, ids);
  EXPECT_EQ(t.node_rank, 0);
  EXPECT_EQ(t.num_nodes, 2);
  EXPECT_EQ(t.local_rank, 2);
  EXPECT_EQ(t.local_size, 3);
  auto t2 = distributed::topology_from_node_ids(ids, 3, ids);
  EXPECT_EQ(t2.node_rank, 1);
  EXPECT_EQ(t2.local_rank, 1);
  EXPECT_EQ(t2.local_size, 2);
}

TEST(Communicator, AllReduceSumAndAvgEveryDtype) {
  auto& w = world();
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::I32, DType::I64}) {
    for (int64_t n : kSizes) {
      Tensor t = rank_tensor(w.rank(), n, dt);
      w.all_reduce(t, ReduceOp::Sum);
      Tensor a = rank_tensor(w.rank(), n, dt);
      w.all_reduce(a, ReduceOp::Avg);
      for (int64_t i = 0; i < n; ++i) {
        double s = sum_value(w.size(), i);
        ASSERT_EQ(t.item(i), s) << dtype_name(dt) << " n=" << n << " i=" << i;
        double avg = s / w.size();
        if (dt == DType::I32 || dt == DType::I64) avg = static_cast<int64_t>(avg);
        double tol = dt == DType::BF16 ? std::abs(avg) / 128 : (dt == DType::F32 ? 1e-6 * avg : 0);
        ASSERT_NEAR(a.item(i), avg, tol) << dtype_name(dt) << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST(Communicator, AllReduceOfRandomFloatsIsBitIdenticalOnEveryRank) {
  auto& w = world();
  Tensor t = test::randn({4099}, 100 + w.rank());
  w.all_reduce(t, ReduceOp::Avg);
  Tensor all = Tensor::empty({4099 * w.size()});
  w.all_gather(t, all);
  for (int r = 1; r < w.size(); ++r)
    ASSERT_EQ(test::max_abs_diff(all.narrow(0, r * 4099, 4099), all.narrow(0, 0, 4099)), 0.0)
        << "rank " << r;
}

TEST(Communicator, ReduceScatterSumAndAvg) {
  auto& w = world();
  for (DType dt : {DType::F32, DType::BF16, DType::F64, DType::I64}) {
    for (int64_t chunk : {int64_t{1}, int64_t{5}, int64_t{4099}}) {
      Tensor in = rank_tensor(w.rank(), chunk * w.size(), dt);
      Tensor out = Tensor::empty({chunk}, dt);
      w.reduce_scatter(in, out, ReduceOp::Sum);
      Tensor out_avg = Tensor::empty({chunk}, dt);
      w.reduce_scatter(in, out_avg, ReduceOp::Avg);
      for (int64_t i = 0; i < chunk; ++i) {
        double s = sum_value(w.size(), w.rank() * chunk + i);
        ASSERT_EQ(out.item(i), s) << dtype_name(dt) << " chunk " << chunk << " i " << i;
        double avg = s / w.size();
        if (dt == DType::I64) avg = static_cast<int64_t>(avg);
        ASSERT_NEAR(out_avg.item(i), avg, dt == DType::BF16 ? avg / 128 : 1e-6 * avg);
      }
    }
  }
}

TEST(Communicator, ReduceScatterIntoOwnChunkOfInput) {
  auto& w = world();
  const int64_t chunk = 33;
  Tensor in = rank_tensor(w.rank(), chunk * w.size(), DType::F32);
  Tensor own = in.narrow(0, w.rank() * chunk, chunk);  // overlapping output (NCCL's in-place)
  w.reduce_scatter(in, own, ReduceOp::Sum);
  for (int64_t i = 0; i < chunk; ++i)
    ASSERT_EQ(own.item(i), sum_value(w.size(), w.rank() * chunk + i));
}

TEST(Communicator, AllGatherOutOfPlaceAndInPlace) {
  auto& w = world();
  for (DType dt : {DType::F32, DType::BF16, DType::U8, DType::I64}) {
    for (int64_t chunk : {int64_t{1}, int64_t{13}, int64_t{3000}}) {
      Tensor in = rank_tensor(w.rank(), chunk, dt);
      Tensor out = Tensor::empty({chunk * w.size()}, dt);
      w.all_gather(in, out);
      Tensor out2 = Tensor::zeros({chunk * w.size()}, dt);
      out2.narrow(0, w.rank() * chunk, chunk).copy_from(in);
      w.all_gather(out2.narrow(0, w.rank() * chunk, chunk), out2);  // in place
      for (int r = 0; r < w.size(); ++r)
        for (int64_t i = 0; i < chunk; ++i) {
          ASSERT_EQ(out.item(r * chunk + i), value(r, i)) << dtype_name(dt);
          ASSERT_EQ(out2.item(r * chunk + i), value(r, i)) << dtype_name(dt);
        }
    }
  }
}

TEST(Communicator, BroadcastFromEveryRoot) {
  auto& w = world();
  for (int root = 0; root < w.size(); ++root) {
    Tensor t = rank_tensor(w.rank(), 257, DType::BF16);
    w.broadcast(t, root);
    for (int64_t i = 0; i < 257; ++i) ASSERT_EQ(t.item(i), value(root, i));
  }
}

TEST(Communicator, AsyncHandlesOverlapAndCompleteInAnyOrder) {
  auto& w = world();
  const int64_t n = 20000;
  Tensor a = rank_tensor(w.rank(), n, DType::F32);
  Tensor b = rank_tensor(w.rank(), n * w.size(), DType::F32);
  Tensor b_out = Tensor::empty({n});
  Tensor c = rank_tensor(w.rank(), n, DType::BF16);
  Tensor c_out = Tensor::empty({n * w.size()}, DType::BF16);
  // Three collectives in flight at once, completed in reverse order of issue.
  distributed::Work wa = w.all_reduce_async(a, ReduceOp::Sum);
  distributed::Work wb = w.reduce_scatter_async(b, b_out, ReduceOp::Avg);
  distributed::Work wc = w.all_gather_async(c, c_out);
  // Host work while they progress; test() drives MPI.
  int polls = 0;
  while (!(wa.test() & wb.test() & wc.test())) ++polls;
  wc.wait();
  wb.wait();
  wa.wait();
  for (int64_t i = 0; i < n; i += 97) {
    ASSERT_EQ(a.item(i), sum_value(w.size(), i));
    ASSERT_FLOAT_EQ(b_out.item(i), sum_value(w.size(), w.rank() * n + i) / w.size());
    for (int r = 0; r < w.size(); ++r) ASSERT_EQ(c_out.item(r * n + i), value(r, i));
  }
  // A dropped handle completes in its destructor, so the buffer is valid afterwards.
  Tensor d = rank_tensor(w.rank(), 100, DType::F32);
  { distributed::Work dropped = w.all_reduce_async(d, ReduceOp::Sum); }
  EXPECT_EQ(d.item(3), sum_value(w.size(), 3));
  w.barrier();
}

TEST(Communicator, SplitIntoEvenAndOddRanks) {
  auto& w = world();
  auto sub = w.split(w.rank() % 2, w.rank(), "parity");
  int expect_size = (w.size() + (w.rank() % 2 == 0 ? 1 : 0)) / 2;
  EXPECT_EQ(sub->size(), expect_size);
  EXPECT_EQ(sub->rank(), w.rank() / 2);
  EXPECT_EQ(sub->label(), "parity");
  Tensor t = Tensor::full({3}, w.rank());
  sub->all_reduce(t, ReduceOp::Sum);
  double s = 0;
  for (int r = w.rank() % 2; r < w.size(); r += 2) s += r;
  EXPECT_EQ(t.item(0), s);
}

TEST(Communicator, BadArgumentsThrowBeforeCommunicating) {
  auto& w = world();
  Tensor in = Tensor::empty({5 * w.size() + 1});
  Tensor out = Tensor::empty({5});
  EXPECT_THROW(w.reduce_scatter(in, out), Error);
  EXPECT_THROW(w.all_gather(out, in), Error);
  Tensor u8 = Tensor::empty({4}, DType::U8);
  EXPECT_THROW(w.all_reduce(u8), Error);
  Tensor strided = Tensor::empty({4, 4}).narrow(1, 0, 2);
  EXPECT_THROW(w.all_reduce(strided), Error);
  EXPECT_THROW(w.broadcast(out, w.size()), Error);
}

TEST(Consistency, SameConfigPasses) {
  EXPECT_NO_THROW(distributed::check_consistency(world(), "model=tiny\nlr=1e-4\n"));
  EXPECT_NE(distributed::build_id().find("git "), std::string::npos);
}

TEST(Consistency, MismatchThrowsOnEveryRankNamingTheRanks) {
  auto& w = world();
  if (w.size() < 2) GTEST_SKIP() << "needs two ranks";
  std::string config = w.rank() == 1 ? "lr=2e-4\n" : "lr=1e-4\n";
  try {
    distributed::check_consistency(w, config);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("different configurations"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rank 1 have"), std::string::npos) << msg;
  }
  std::string build = w.rank() == 0 ? "build A" : "build B";
  try {
    distributed::check_consistency(w, "same", build);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different builds"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rae
