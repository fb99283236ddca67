#include "train/run_dir.h"

#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "io/tensorboard.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace rae::train {

namespace {

constexpr const char* kTmpPrefix = ".tmp-";  // save_checkpoint's temporary directories

// The run's own files besides checkpoints (the trainer writes and rewrites them).
std::vector<std::string> run_files(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const char* f : {"metrics.jsonl", "run.json", "config.cfg"}) {
    const fs::path p = fs::path(run_dir) / f;
    if (fs::is_regular_file(p)) out.push_back(p.string());
  }
  for (const std::string& f : tensorboard::event_files(run_dir)) out.push_back(f);
  return out;
}

std::string utc_stamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// A new, empty discarded-<time>[-k] directory of run_dir.
fs::path new_discard_dir(const std::string& run_dir) {
  const std::string base = (fs::path(run_dir) / ("discarded-" + utc_stamp())).string();
  for (int k = 1;; ++k) {
    const fs::path p = k == 1 ? fs::path(base) : fs::path(base + "-" + std::to_string(k));
    if (fs::create_directory(p)) return p;
  }
}

std::string relative_to(const std::string& path, const std::string& run_dir) {
  const fs::path rel =
      fs::path(path).lexically_normal().lexically_relative(fs::path(run_dir).lexically_normal());
  RAE_CHECK(!rel.empty() && *rel.begin() != "..", "set_aside: '", path, "' is not inside '",
            run_dir, "'");
  return rel.string();
}

}  // namespace

std::vector<std::string> remove_interrupted_saves(const std::string& run_dir) {
  std::vector<std::string> removed;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return removed;
  for (auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    // Exactly ".tmp-" + checkpoint_name(step): nothing else under checkpoints/ is touched.
    if (!e.is_directory() || n.rfind(kTmpPrefix, 0) != 0 ||
        checkpoint_step(n.substr(std::string(kTmpPrefix).size())) < 0)
      continue;
    fs::remove_all(e.path());
    removed.push_back(e.path().string());
  }
  if (!removed.empty()) fsync_path(root.string());
  return removed;
}

std::string set_aside(const std::string& run_dir, const std::vector<std::string>& paths,
                      const std::vector<std::string>& copies, const std::string& reason) {
  const fs::path dest = new_discard_dir(run_dir);
  std::string listing;
  for (const std::string& p : copies) {
    const fs::path to = dest / relative_to(p, run_dir);
    fs::create_directories(to.parent_path());
    fs::copy_file(p, to);
    fsync_path(to.string());
    listing += "  copied " + relative_to(p, run_dir) + "\n";
  }
  for (const std::string& p : paths) {
    const fs::path to = dest / relative_to(p, run_dir);
    fs::create_directories(to.parent_path());
    rename_durable(p, to.string());
    fsync_path(fs::path(p).parent_path().string());
    listing += "  moved  " + relative_to(p, run_dir) + "\n";
  }
  write_file_atomic(
      (dest / "reason.txt").string(),
      "Set aside by rae train at " + utc_stamp() + " UTC (nothing was deleted):\n" + reason +
          "\n\n" + listing +
          "\nMove them back (paths relative to the run directory) to restore them.\n");
  fsync_path(run_dir);
  return dest.string();
}

std::string prepare_resume(const std::string& run_dir, bool restart_from_scratch) {
  for (const std::string& p : remove_interrupted_saves(run_dir))
    log::info("removed ", p, " (a checkpoint save that was interrupted)");
  const CheckpointScan scan = scan_checkpoints(run_dir);
  std::string problems;
  std::vector<std::string> invalid;
  for (const auto& [d, problem] : scan.invalid) {
    problems += "\n  " + d + ": " + problem;
    invalid.push_back(d);
  }
  if (scan.valid) {
    if (restart_from_scratch)
      log::info("--restart-from-scratch ignored: ", *scan.valid,
                " is valid and the run resumes from it (the flag only applies when no "
                "checkpoint is valid; to start over, use another run directory)");
    if (!invalid.empty()) {
      // The resumed run rewrites the steps after its checkpoint: keep the record of the old
      // ones beside the checkpoints set aside.
      const std::string dest =
          set_aside(run_dir, invalid, run_files(run_dir),
                    "these checkpoints, newer than " + *scan.valid + ", do not verify:" + problems +
                        "\nmetrics.jsonl and the event files are copies as they were.");
      log::warn("checkpoints newer than ", *scan.valid, " do not verify:", problems,
                "\nthey were moved to ", dest, " (with a copy of metrics.jsonl); resuming from ",
                *scan.valid);
    }
    return *scan.valid;
  }
  if (invalid.empty()) return "";  // a new run, or one killed before its first checkpoint
  if (!restart_from_scratch)
    RAE_THROW("run directory '", run_dir, "' has ", invalid.size(),
              " checkpoint(s) and none is valid:", problems,
              "\nNothing was changed. Restore a valid checkpoint, or pass --restart-from-scratch "
              "to move these checkpoints and the run's files (metrics.jsonl, run.json, "
              "config.cfg, events) into ",
              (fs::path(run_dir) / "discarded-<time>").string(), " and start again from step 0");
  std::vector<std::string> moved = invalid;
  for (const std::string& f : run_files(run_dir)) moved.push_back(f);
  const std::string dest =
      set_aside(run_dir, moved, {},
                "--restart-from-scratch: no checkpoint of the run is valid:" + problems +
                    "\nThe run's files were moved with them; the run starts again from step 0.");
  log::warn("no valid checkpoint:", problems, "\n--restart-from-scratch: moved them and the run's ",
            "files to ", dest, "; starting from step 0");
  return "";
}

}  // namespace rae::train
