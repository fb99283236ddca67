// Run checkpoints: checkpoints/step-NNNNNNN/ with model.safetensors, ema.safetensors,
// optimizer.safetensors (AdamW moments), state.json (step, data position, guard counters) and
// manifest.json (file sizes and XXH64 checksums). Written into a temporary directory,
// fsynced, then renamed into place, so a checkpoint directory either verifies or is absent.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "nn/params.h"
#include "train/optimizer.h"

namespace rae::train {

struct RunState {
  int64_t step = 0;  // optimizer steps done (the data position is step * global batch)
  int64_t samples_seen = 0;
  int64_t adam_step = 0;  // AdamW bias-correction count (skipped steps do not count)
  int64_t bad_in_row = 0, skipped_total = 0;
  uint64_t seed = 0;
  std::string preset;
  std::string model_config;  // DiTConfig JSON, stored as model/ema safetensors metadata
  nlohmann::json data;       // the data stream's position (next batch)
};

std::string checkpoint_name(int64_t step);  // "step-0000040"

// Writes checkpoint `state.step` under root/checkpoints and prunes old ones (keep the newest
// `keep_last`, and those whose step is a multiple of `keep_every` when > 0). Returns its path.
std::string write_checkpoint(const std::string& run_dir, const nn::ParamStore& ps, Ema& ema,
                             AdamW& adam, const RunState& state, int64_t keep_last,
                             int64_t keep_every);
// Checks a checkpoint directory against its manifest; returns "" or the problem.
std::string verify_checkpoint(const std::string& dir);
// Checkpoint directories of a run, newest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// The newest checkpoint that verifies; corrupt newer ones are reported (log::warn) and skipped.
std::optional<std::string> latest_valid_checkpoint(const std::string& run_dir);
void load_checkpoint(const std::string& dir, nn::ParamStore& ps, Ema* ema, AdamW* adam,
                     RunState* state);

}  // namespace rae::train
