// What a trainer does to a run directory before it resumes, under the run lock (rank 0), and
// the one way anything of a run is ever taken out of its place. The rule: nothing in a run
// directory is deleted except by checkpoint retention (checkpoint.h: checkpoints older than a
// newer one that verifies) and the temporary directories of interrupted saves. Everything else
// that must make room is moved, whole and unchanged, into R/discarded-<UTC time>/ with a
// reason.txt, where the user can inspect or restore it. (A resumed run trims metrics.jsonl and
// the event files to the step it resumes from, never below, and rewrites config.cfg and
// run.json with its own settings.)
//
// At start (prepare_resume):
//   - checkpoints/.tmp-step-NNNNNNN/ directories (saves killed before their rename; only names
//     of exactly that pattern, only under checkpoints/) are removed;
//   - the newest checkpoint that verifies is the one to resume from; newer ones that do not
//     verify are set aside (a save of the same step would otherwise replace them), with a copy
//     of metrics.jsonl and the TensorBoard event files as they were, since the resumed run
//     rewrites the steps after its checkpoint;
//   - checkpoints exist but none verifies: an error naming each checkpoint and its problem,
//     with nothing changed, unless restart_from_scratch: then the checkpoints and the run's
//     files (metrics.jsonl, run.json, config.cfg, event files) are set aside and the run starts
//     from step 0. With a valid checkpoint restart_from_scratch changes nothing (logged): a
//     requeued job that carries the flag must not throw its progress away.
#pragma once
#include <string>
#include <vector>

namespace rae::train {

// The checkpoint to resume from ("" = start from step 0), after the housekeeping above.
// Throws rae::Error naming every invalid checkpoint when none is valid and !restart_from_scratch.
std::string prepare_resume(const std::string& run_dir, bool restart_from_scratch);

// Removes checkpoints/.tmp-step-NNNNNNN directories; returns the removed paths.
std::vector<std::string> remove_interrupted_saves(const std::string& run_dir);

// Moves `paths` (files or directories inside run_dir) into a new run_dir/discarded-<UTC
// time>[-k]/ at the same relative paths, copies `copies` there (files left in place), and
// writes reason.txt (the reason, the time, what was moved or copied). Returns that directory.
std::string set_aside(const std::string& run_dir, const std::vector<std::string>& paths,
                      const std::vector<std::string>& copies, const std::string& reason);

}  // namespace rae::train
