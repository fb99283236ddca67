// Stage-2 models as velocity fields for the samplers (diffusion/samplers.h): the samplers know
// nothing of the model type, guidance wraps these.
#pragma once
#include <memory>
#include <string>

#include "diffusion/latent_norm.h"
#include "diffusion/samplers.h"
#include "diffusion/sampling_model.h"
#include "models/denoiser.h"
#include "nn/arena.h"
#include "sampling/model_source.h"

namespace rae::sampling {

// Any models::Denoiser on its device as v(x, t, y): x, out (B, T, C) F32, y (B) I32 on that
// device. Runs the model's inference pass (Denoiser::infer: nothing kept for a backward) in an
// arena of `act_dtype` (BF16 for bf16 sampling on CUDA), rewound every call. The model must
// outlive the result.
diffusion::Velocity denoiser_velocity(models::Denoiser& model, Device device,
                                      DType act_dtype = DType::F32);

// A loaded stage-2 model as the samplers see it.
struct VelocityModel {
  std::shared_ptr<diffusion::SamplingModel> model;  // owns the module
  diffusion::Velocity velocity;
  int64_t grid = 0, tokens = 0, channels = 0, num_classes = 0;
  bool has_null_class = false;
  // The statistics the model file carries (undefined: none; then its samples are raw latents
  // unless the user names statistics).
  diffusion::LatentStats stats;
  std::string description;  // the module's summary and where it came from
};

// Loads `src` (a file, a run or checkpoint directory consolidated in memory, or a random preset
// initialised as for training) as a models::Denoiser, moved to `device`.
VelocityModel load_velocity_model(const ModelSource& src, Device device,
                                  DType act_dtype = DType::F32);

// The stage-2 model of a checkpoint (for resolve_model_source): the one named "model".
bool is_stage2_model(const std::string& name, const models::ModelSpec& spec);

}  // namespace rae::sampling
