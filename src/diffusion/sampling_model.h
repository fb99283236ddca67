// Loading a stage-2 model for sampling (`rae sample`, `rae model-forward`): a safetensors file
// written by `rae export` (the model's type and config in the metadata, plus the latent
// statistics when the run normalised its latents) or by tools/convert_rae_checkpoint.py.
// Files without a recorded config (a bare release state dict) are read as DiT^DH / DiT with the
// config inferred from the tensor names and shapes (models::infer_dit_config, which refuses
// what the names cannot tell).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "diffusion/latent_norm.h"
#include "models/denoiser.h"
#include "models/registry.h"

namespace rae::diffusion {

struct SamplingModel {
  std::unique_ptr<nn::Module> module;
  models::Denoiser* denoiser = nullptr;  // `module` as the Denoiser it must be
  models::ModelSpec spec;
  // The training data's statistics: samples come out normalised and denormalize_latents()
  // turns them into encoder latents for the decoder. Undefined: the model works on raw latents.
  LatentStats stats;
  std::map<std::string, std::string> metadata;
};

SamplingModel load_sampling_model(const std::string& path);
// The same from tensors and metadata already in memory (e.g. a checkpoint consolidated by
// train::consolidate_checkpoint); `where` names the source in errors.
SamplingModel sampling_model_from(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata,
                                  const std::string& where);

}  // namespace rae::diffusion
