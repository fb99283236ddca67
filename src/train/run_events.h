// TensorBoard event files of a run directory, beside metrics.jsonl (io/tensorboard.h writes the
// format). Rank 0 of a run opens one at the start of every attempt; a resumed attempt first
// drops, from the files of earlier attempts, the events after the step it resumes from, so each
// step is shown once, as in metrics.jsonl.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "io/tensorboard.h"

namespace rae::train {

// Truncates earlier event files of `run_dir` to steps <= `step` (each rewritten atomically),
// then starts a new event file there.
std::unique_ptr<tensorboard::Writer> open_run_events(const std::string& run_dir, int64_t step);

// One logged step: the numbers of its metrics.jsonl line as "train/<key>" scalars, plus the
// host's peak resident memory ("memory/host_peak_rss_gib").
void log_step_events(tensorboard::Writer& tb, const nlohmann::json& metrics_line);

// Peak resident set size of this process in GiB (VmHWM of /proc/self/status; 0 if unknown).
double host_peak_rss_gib();

}  // namespace rae::train
