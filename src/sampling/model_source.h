// Where the models of `rae sample`, `rae decode` and `rae reconstruct` come from. A source is
// what the user typed after --model, --guide-model or --decoder:
//   FILE                    a safetensors file: `rae export` output (model_type / model_config
//                           metadata, latent statistics) or a file converted from the release
//                           (tools/convert_rae_checkpoint.py)
//   RUN_DIR                 a training run: its newest checkpoint that verifies; the model's EMA
//                           weights (or its trained ones) are consolidated in memory from the
//                           shard files, exactly as `rae export` would write them, so sampling
//                           needs no export step (train::consolidate_checkpoint)
//   CHECKPOINT_DIR          one checkpoint (checkpoints/step-NNNNNNN) of a run, likewise
//   random:PRESET[:SEED]    the registry's preset initialised with init(SEED) (benchmarks, tests,
//                           the demo before a decoder is trained)
// A checkpoint with one model gives that model; with several (stage 1: decoder and
// discriminator) the one the caller's filter accepts (stage 2: the model named "model", the
// stage-2 objective's, as `rae export --model` defaults to; a decoder: the one of type
// "ViTDecoder"); none or several accepted is an error naming them. Whether the model has the
// interface the caller needs (models::Denoiser, models::VitDecoder) is checked when it is built.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "models/registry.h"
#include "tensor/tensor.h"

namespace rae::sampling {

struct ModelSource {
  enum class Kind { File, Checkpoint, Random } kind = Kind::File;
  std::string arg;         // as given
  std::string path;        // the file, or the checkpoint directory
  std::string model_name;  // Checkpoint: the manifest's model name
  bool ema = true;         // Checkpoint: EMA weights (else the trained ones)
  models::ModelSpec spec;  // Random: the preset
  uint64_t seed = 0;       // Random
};

// Whether a checkpoint's model (its manifest name and spec) is the one the caller wants.
using ModelFilter = std::function<bool(const std::string& name, const models::ModelSpec&)>;

// Resolves `arg` (a path or random:...). Errors name the argument, the directory and what it
// holds. `what` names the option in messages ("--model").
ModelSource resolve_model_source(const std::string& arg, const std::string& what, bool ema,
                                 const ModelFilter& wanted);

// "random:PRESET[:SEED]": true with the preset name and seed; false for anything else. Throws on
// a bad seed.
bool parse_random_source(const std::string& source, std::string* preset, uint64_t* seed);

// The weights and metadata of a File or Checkpoint source (not Random), in memory.
struct LoadedWeights {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  std::string where;  // for errors: the file, or "CHECKPOINT_DIR (model NAME, ema)"
};
LoadedWeights load_weights(const ModelSource& src);

// What identifies the source in a sampling job's job.json (a rerun against other weights is
// refused): file path, size and modification time; checkpoint directory, model, weights and the
// manifest's XXH64; the random preset's spec and seed.
nlohmann::json source_identity(const ModelSource& src);

// For logs: "run/checkpoints/step-0000300 (model, EMA)", the file path, "random:DiTDH-XL".
std::string describe(const ModelSource& src);

}  // namespace rae::sampling
