// The one checkpoint format, for every strategy, world size and device:
//
//   checkpoints/step-NNNNNNN/
//     shard-KKKKK-of-SSSSS.safetensors  one per shard rank (written by the ranks of replica 0 in
//                                       parallel): for every parameter element range that shard
//                                       owns, 1-D F32 slices "<model>/<kind>/<tensor>@<offset>",
//                                       kind = param | ema | adam_m | adam_v
//     extras.safetensors                rank 0: every model's buffers ("<model>/buffer/<name>",
//                                       e.g. pos_embed, t_embedder.W) and the objective's
//                                       artifacts ("artifact/<name>", e.g. the latent statistics)
//     state.json                        RunState: step, data position and data-order signature,
//                                       AdamW step counts, NaN-guard counters, seed
//     manifest.json                     format "rae-checkpoint" v2; per model its type and config
//                                       and, per tensor, its name, shape, dtype and the pieces
//                                       (file, element offset, count) that hold it; every file's
//                                       size and XXH64 checksum
//
// Because pieces are per tensor (not per flat buffer), any rank count and strategy reads any
// checkpoint: each rank copies exactly the element ranges it owns (ShardedParams::pieces) from
// whichever files hold them; with the same world size and strategy a rank reads exactly its own
// file, and resumes bit-exactly. Buffers are saved and loaded, never rebuilt by init().
//
// Crash safety: everything is written into checkpoints/.tmp-step-N/ (each file atomically:
// core/atomic_file.h), the directory is fsynced and renamed into place, then its parent
// fsynced, so a checkpoint directory either verifies or does not exist. Resume takes the newest
// checkpoint that verifies against its manifest (train/run_dir.h: newer invalid ones are set
// aside; with none valid the trainer refuses to start). Loading checks every tensor's dtype
// (F32) and shape against the model, naming the tensor and the file.
// For tests, RAE_TEST_KILL_CHECKPOINT=shards|manifest SIGKILLs rank 0 after the shard files,
// or after the manifest before the rename.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "train/objective.h"

namespace rae::train {

struct RunState {
  int64_t step = 0;  // optimizer steps done (the data position is step * global batch)
  int64_t samples_seen = 0;
  int64_t bad_in_row = 0, skipped_total = 0;
  uint64_t seed = 0;
  nlohmann::json data;                        // the data stream's position (of the next batch)
  std::string data_signature;                 // BatchStream::order_signature()
  std::map<std::string, int64_t> adam_steps;  // per model: AdamW bias-correction count
  // The loss-spike guard (trainer.h): running mean of the losses of the updates done so far
  // (EMA, decay 0.99) and their count; checkpointed so that a resumed run guards as an
  // uninterrupted one. Absent in older checkpoints: 0.
  double loss_mean = 0;
  int64_t loss_steps = 0;
  nlohmann::json to_json() const;
  static RunState from_json(const nlohmann::json& j, const std::string& where);
};

constexpr const char* kCheckpointFormat = "rae-checkpoint";
constexpr int kCheckpointVersion = 2;

std::string checkpoint_name(int64_t step);  // "step-0000040"
// The step of a checkpoint directory named by checkpoint_name ("step-" and digits only), or -1.
int64_t checkpoint_step(const std::string& dir);
// Checkpoint directories of a run, newest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// Checks a checkpoint directory against its manifest; returns "" or the problem.
std::string verify_checkpoint(const std::string& dir);

struct CheckpointScan {
  std::optional<std::string> valid;  // the newest checkpoint that verifies
  // The checkpoints newer than it (all of them when none verifies), newest first, each with
  // its problem. Older ones are not read.
  std::vector<std::pair<std::string, std::string>> invalid;
};
CheckpointScan scan_checkpoints(const std::string& run_dir);
// The newest checkpoint that verifies; corrupt newer ones are reported (log::warn) and skipped.
std::optional<std::string> latest_valid_checkpoint(const std::string& run_dir);

// Retention: keeps the newest `keep_last` (>= 1) checkpoints and those whose step is a multiple
// of `keep_every` (> 0), and deletes the others, but only below a newest checkpoint that
// verifies in full (verify_checkpoint): when the newest does not, nothing is deleted (warned).
// So the last valid checkpoint is never deleted. Returns the deleted paths.
std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep_last,
                                           int64_t keep_every);

// Writes checkpoint `state.step` of `models` (collective over `world`; null: one process) under
// run_dir/checkpoints and applies retention (prune_checkpoints). A checkpoint directory of the
// same step already there is set aside (run_dir.h), never replaced. Returns its path on rank 0
// ("" elsewhere).
std::string save_checkpoint(const std::string& run_dir, const std::vector<TrainedModel*>& models,
                            const Objective& objective, const RunState& state, int64_t keep_last,
                            int64_t keep_every, distributed::Communicator* world);

// Loads checkpoint `dir` into `models` (collective): every rank its owned shards of parameters,
// EMA and AdamW moments, the buffers, the AdamW step counts; then publishes the parameters.
// The models must match the checkpoint's (names, types, configs, tensor shapes); errors name
// the file and the tensor.
RunState load_checkpoint(const std::string& dir, const std::vector<TrainedModel*>& models,
                         distributed::Communicator* world);

// One model's weights (or EMA) of checkpoint `dir`, consolidated in memory from every shard
// file, exactly what `rae export` writes: the release's tensor names, the buffers, the
// objective's artifacts (latent statistics) and metadata model_type / model_config, step and
// weights ("ema" or "model"). `rae sample --model RUN_DIR` samples from this without an export.
struct ExportedModel {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
ExportedModel consolidate_checkpoint(const std::string& dir, const std::string& model_name,
                                     bool ema);
// The models of checkpoint `dir` (name and spec, as its manifest lists them).
std::vector<std::pair<std::string, models::ModelSpec>> checkpoint_models(const std::string& dir);

// `rae export`: model `model_name`'s weights (or its EMA) of a checkpoint as one safetensors file
// with the release's tensor names, the buffers, the objective's artifacts (latent statistics)
// and metadata model_type / model_config (models/registry.h) and step.
void export_checkpoint(const std::string& dir, const std::string& model_name, bool ema,
                       const std::string& out);

}  // namespace rae::train
