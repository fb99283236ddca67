// Run-directory safety (train/run_dir.h, checkpoint retention, the loss-spike guard): nothing
// of a run is deleted except old checkpoints below a valid newer one and the temporary
// directories of interrupted saves; everything else is set aside unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "support/util.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/trainer.h"

using namespace rae;
namespace fs = std::filesystem;

namespace {

using test::error_of;

train::TrainConfig micro_config() {
  train::TrainConfig c;
  c.preset = "DiTDH-micro";
  c.global_batch_size = 8;
  c.lr = 1e-3;
  c.steps = 4;
  c.progress = false;
  c.ckpt_every = 1;
  c.keep_last = 10;
  return c;
}

train::SyntheticStream micro_stream() {
  return train::SyntheticStream(64, 4, 8, 5);
}

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[fs::relative(e.path(), dir).string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

void flip_byte(const std::string& file, std::streamoff at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.get(c);
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x5a));
}

std::string shard_of(const std::string& run, int step) {
  return run + "/checkpoints/" + train::checkpoint_name(step) + "/shard-00000-of-00001.safetensors";
}

// A run directory with checkpoints at steps 1..4 (4 steps, one per step).
std::string trained_run(const std::string& tag) {
  std::string d = test::make_temp_dir(tag);
  auto data = micro_stream();
  train::Trainer tr(micro_config(), data, d);
  tr.run();
  EXPECT_EQ(train::list_checkpoints(d).size(), 4u);
  return d;
}

std::vector<std::string> discarded_dirs(const std::string& run) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().rfind("discarded-", 0) == 0) out.push_back(e.path().string());
  return out;
}

}  // namespace

// Retention deletes nothing while the newest checkpoint does not verify (same size, flipped
// bytes: only the full checksum sees it); with a valid newest it keeps keep_last.
TEST(RunDir, RetentionNeverDeletesBelowAnInvalidNewest) {
  const std::string d = trained_run("retention_invalid");
  flip_byte(shard_of(d, 4), 300);
  EXPECT_TRUE(train::prune_checkpoints(d, 1, 0).empty());
  EXPECT_EQ(train::list_checkpoints(d).size(), 4u);
  flip_byte(shard_of(d, 4), 300);  // restored
  EXPECT_EQ(train::prune_checkpoints(d, 2, 0).size(), 2u);
  ASSERT_EQ(train::list_checkpoints(d).size(), 2u);
  EXPECT_EQ(train::checkpoint_step(train::list_checkpoints(d).back()), 3);
}

// Only checkpoints/.tmp-step-<digits> directories go; other names, files and places stay.
TEST(RunDir, InterruptedSavesAreRemovedByNameOnly) {
  const std::string d = test::make_temp_dir("interrupted");
  const std::string c = d + "/checkpoints";
  for (const char* dir : {".tmp-step-0000005", ".tmp-step-0000012", ".tmp-notes", ".tmp-step-12x",
                          "step-0000003x", "keep"})
    fs::create_directories(c + "/" + dir);
  std::ofstream(c + "/.tmp-step-0000005/shard.safetensors") << "partial";
  std::ofstream(c + "/.tmp-step-0000099") << "a file, not a save";
  fs::create_directories(d + "/.tmp-step-0000007");  // not under checkpoints/
  auto removed = train::remove_interrupted_saves(d);
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_FALSE(fs::exists(c + "/.tmp-step-0000005"));
  EXPECT_FALSE(fs::exists(c + "/.tmp-step-0000012"));
  for (const char* kept :
       {".tmp-notes", ".tmp-step-12x", "step-0000003x", "keep", ".tmp-step-0000099"})
    EXPECT_TRUE(fs::exists(c + "/" + kept)) << kept;
  EXPECT_TRUE(fs::exists(d + "/.tmp-step-0000007"));
  EXPECT_TRUE(train::list_checkpoints(d).empty());  // "step-0000003x" is not a checkpoint
}

// No valid checkpoint: resume refuses naming each one and changes nothing; with
// restart_from_scratch the checkpoints and the run's files move, unchanged, into discarded-*.
TEST(RunDir, NoValidCheckpointRefusesThenRestartsFromScratch) {
  const std::string d = trained_run("none_valid");
  for (int s = 1; s <= 4; ++s) flip_byte(shard_of(d, s), 200 + s);
  const auto before = files_of(d);
  {
    auto data = micro_stream();
    train::Trainer tr(micro_config(), data, d);
    const std::string e = error_of([&] { tr.resume(); });
    for (int s = 1; s <= 4; ++s)
      EXPECT_NE(e.find(train::checkpoint_name(s) + ": checksum mismatch for shard-00000-of-00001"),
                std::string::npos)
          << e;
    EXPECT_NE(e.find("--restart-from-scratch"), std::string::npos) << e;
  }
  EXPECT_EQ(files_of(d), before);
  auto data = micro_stream();
  train::Trainer tr(micro_config(), data, d);
  EXPECT_EQ(tr.resume(true), 0);
  const auto dirs = discarded_dirs(d);
  ASSERT_EQ(dirs.size(), 1u);
  auto moved = files_of(dirs[0]);
  EXPECT_NE(moved["reason.txt"].find("--restart-from-scratch"), std::string::npos);
  moved.erase("reason.txt");
  EXPECT_EQ(moved, before);  // every file of the run, byte-identical
  EXPECT_TRUE(train::list_checkpoints(d).empty());
  EXPECT_FALSE(fs::exists(d + "/metrics.jsonl"));
}

// A valid checkpoint exists: resume takes it, sets aside the invalid newer ones with a copy of
// metrics.jsonl, keeps the metrics up to its step, and restart_from_scratch changes nothing.
TEST(RunDir, InvalidNewerCheckpointsAreSetAsideOnResume) {
  const std::string d = trained_run("newer_invalid");
  flip_byte(shard_of(d, 4), 250);
  flip_byte(shard_of(d, 3), 250);
  const auto before = files_of(d);
  auto data = micro_stream();
  train::Trainer tr(micro_config(), data, d);
  EXPECT_EQ(tr.resume(/*restart_from_scratch=*/true), 2);
  const auto dirs = discarded_dirs(d);
  ASSERT_EQ(dirs.size(), 1u);
  auto moved = files_of(dirs[0]);
  EXPECT_EQ(moved["metrics.jsonl"], before.at("metrics.jsonl"));
  for (int s : {3, 4}) {
    const std::string rel = "checkpoints/" + train::checkpoint_name(s) + "/manifest.json";
    EXPECT_EQ(moved[rel], before.at(rel));
  }
  EXPECT_EQ(train::list_checkpoints(d).size(), 2u);
  tr.run();  // steps 3 and 4 again
  EXPECT_EQ(train::list_checkpoints(d).size(), 4u);
  EXPECT_EQ(train::verify_checkpoint(d + "/checkpoints/step-0000004"), "");
}

// A save never replaces a checkpoint directory of the same step (here: a trainer that did not
// resume): the old one is set aside unchanged.
TEST(RunDir, ACheckpointOfTheSameStepIsSetAsideNotReplaced) {
  const std::string d = trained_run("same_step");
  const auto old = files_of(d + "/checkpoints/step-0000001");
  auto cfg = micro_config();
  cfg.steps = 1;
  cfg.seed = 7;  // another model: another checkpoint
  auto data = micro_stream();
  train::Trainer tr(cfg, data, d);
  tr.run();
  const auto dirs = discarded_dirs(d);
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(files_of(dirs[0] + "/checkpoints/step-0000001"), old);
  EXPECT_NE(files_of(d + "/checkpoints/step-0000001"), old);
  EXPECT_EQ(train::verify_checkpoint(d + "/checkpoints/step-0000001"), "");
}

namespace {
// The synthetic stream with the latents of the batches >= `from` multiplied by `scale`.
class ScaledStream : public train::SyntheticStream {
 public:
  ScaledStream(int64_t from, float scale) : SyntheticStream(64, 4, 8, 5), from_(from), k_(scale) {}
  train::DataBatch next() override {
    train::DataBatch b = SyntheticStream::next();
    if (n_++ >= from_) {
      float* p = b.latents.data<float>();
      for (int64_t i = 0; i < b.latents.numel(); ++i) p[i] *= k_;
    }
    return b;
  }

 private:
  int64_t from_, n_ = 0;
  float k_;
};
}  // namespace

// A loss far above its running mean stops the run before the update: the step count, the
// parameters and the running mean stay those of the step before; the guard waits its warmup.
TEST(RunDir, LossSpikeStopsBeforeTheUpdate) {
  auto cfg = micro_config();
  cfg.loss_spike_warmup = 3;
  cfg.normalize = false;
  ScaledStream data(5, 100.0f);
  train::Trainer tr(cfg, data, "");
  for (int i = 0; i < 5; ++i) tr.step();
  EXPECT_EQ(tr.state().loss_steps, 5);
  const double mean = tr.state().loss_mean;
  const Tensor w = tr.model().params->masters()[0].clone();
  const std::string e = error_of([&] { tr.step(); });
  EXPECT_NE(e.find("step 6: loss"), std::string::npos) << e;
  EXPECT_NE(e.find("train.loss_spike_factor = 10"), std::string::npos) << e;
  EXPECT_EQ(tr.state().step, 5);
  EXPECT_EQ(tr.state().loss_mean, mean);
  EXPECT_EQ(test::max_abs_diff(tr.model().params->masters()[0], w), 0.0);
  // Off (factor 0), or still in its warmup: the same data trains on.
  cfg.loss_spike_factor = 0;
  ScaledStream off(5, 100.0f);
  train::Trainer t2(cfg, off, "");
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(std::isfinite(t2.step().loss));
  cfg.loss_spike_factor = 10;
  cfg.loss_spike_warmup = 10;
  ScaledStream early(5, 100.0f);
  train::Trainer t3(cfg, early, "");
  for (int i = 0; i < 7; ++i) t3.step();
}
