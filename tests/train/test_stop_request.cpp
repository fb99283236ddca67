// Stop requests (train/stop_request.h): the handlers only record the signal; a run stops at the
// step boundary after the request with a checkpoint of that step, written once; resuming gives
// the uninterrupted run's checkpoint byte for byte and each step once in metrics.jsonl. The
// multi-rank agreement and the Slurm side are in tests/slurm.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "support/util.h"
#include "train/checkpoint.h"
#include "train/stop_request.h"
#include "train/trainer.h"

using namespace rae;
namespace fs = std::filesystem;

namespace {

train::TrainConfig micro_config() {
  train::TrainConfig c;
  c.preset = "DiTDH-micro";
  c.global_batch_size = 8;
  c.lr = 1e-3;
  c.steps = 8;
  c.progress = false;
  c.ckpt_every = 3;
  c.keep_last = 10;
  return c;
}

// Raises SIGUSR1 while step `at` draws its batch (mid-step, as a real signal would arrive).
class SignalAtStep : public train::SyntheticStream {
 public:
  explicit SignalAtStep(int at) : SyntheticStream(64, 4, 8, 5), at_(at) {}
  train::DataBatch next() override {
    if (++calls_ == at_) raise(SIGUSR1);
    return SyntheticStream::next();
  }

 private:
  int at_, calls_ = 0;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<int64_t> logged_steps(const std::string& run) {
  std::ifstream in(fs::path(run) / "metrics.jsonl");
  std::vector<int64_t> steps;
  std::string line;
  while (std::getline(in, line)) steps.push_back(nlohmann::json::parse(line).at("step"));
  return steps;
}

std::vector<double> logged_values(const std::string& run, const char* key) {
  std::ifstream in(fs::path(run) / "metrics.jsonl");
  std::vector<double> v;
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line).at(key));
  return v;
}

// Every file of two checkpoint directories, byte for byte.
void expect_same_checkpoint(const std::string& a, const std::string& b) {
  size_t n = 0;
  for (auto& e : fs::directory_iterator(a)) {
    const auto other = fs::path(b) / e.path().filename();
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_EQ(slurp(e.path().string()), slurp(other.string())) << e.path();
    ++n;
  }
  EXPECT_EQ(n, static_cast<size_t>(std::distance(fs::directory_iterator(b), {})));
}

// Runs (resuming) to cfg.steps; returns the step it ended at.
int64_t train_until_stop(const std::string& run, int signal_at_step) {
  SignalAtStep data(signal_at_step);
  train::Trainer tr(micro_config(), data, run);
  tr.resume();
  tr.run();
  return tr.state().step;
}

}  // namespace

TEST(StopRequest, HandlerRecordsTheFirstSignal) {
  train::reset_stop_request();
  train::install_stop_handlers();
  EXPECT_FALSE(train::stop_at_step_boundary());
  raise(SIGUSR1);  // the process survives: the handler only records it
  raise(SIGTERM);
  EXPECT_EQ(train::stop_signal(), SIGUSR1);
  EXPECT_FALSE(train::stop_agreed());
  EXPECT_TRUE(train::stop_at_step_boundary());  // no communicator: this process decides
  EXPECT_TRUE(train::stop_agreed());
  train::StopScope scope(nullptr);
  EXPECT_EQ(scope.exit_status(false), train::kExitStopped);
  EXPECT_EQ(scope.exit_status(true), 0);  // finished: the signal came too late to matter
  train::reset_stop_request();
  EXPECT_EQ(train::stop_signal(), 0);
  EXPECT_EQ(scope.exit_status(false), 0);
}

// A stop mid-step 5 checkpoints step 5; one at step 6, right after the periodic checkpoint of
// step 6, writes nothing more. Resumed each time, the run ends with the uninterrupted run's bytes.
TEST(StopRequest, StopsAtTheStepBoundaryAndResumesExactly) {
  train::install_stop_handlers();
  const std::string ref = test::make_temp_dir("stop_request_ref");
  const std::string run = test::make_temp_dir("stop_request_run");
  train::reset_stop_request();
  EXPECT_EQ(train_until_stop(ref, -1), 8);

  EXPECT_EQ(train_until_stop(run, 5), 5);
  EXPECT_TRUE(train::stop_agreed());
  auto ck = train::list_checkpoints(run);
  ASSERT_EQ(ck.size(), 2u);  // step 3 (periodic) and step 5 (the stop)
  EXPECT_EQ(ck[0], (fs::path(run) / "checkpoints" / train::checkpoint_name(5)).string());
  EXPECT_EQ(train::verify_checkpoint(ck[0]), "");
  EXPECT_EQ(logged_steps(run), (std::vector<int64_t>{1, 2, 3, 4, 5}));

  train::reset_stop_request();
  EXPECT_EQ(train_until_stop(run, 1), 6);  // resumed at 5: its first step is step 6
  ck = train::list_checkpoints(run);
  ASSERT_EQ(ck.size(), 3u);  // + step 6, written once (periodic)
  EXPECT_EQ(train::verify_checkpoint(ck[0]), "");

  train::reset_stop_request();
  EXPECT_EQ(train_until_stop(run, -1), 8);
  EXPECT_EQ(logged_steps(run), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  expect_same_checkpoint(train::list_checkpoints(ref)[0], train::list_checkpoints(run)[0]);
  EXPECT_EQ(logged_values(ref, "loss"), logged_values(run, "loss"));
}
