// Models as velocity fields for the samplers (diffusion/samplers.h): the samplers know nothing
// of the model type, guidance wraps these.
#pragma once
#include <memory>
#include <string>

#include "diffusion/samplers.h"
#include "models/dit.h"
#include "nn/arena.h"

namespace rae::sampling {

// "random:PRESET[:SEED]": true and the preset and seed for such a source (randomly initialised
// models for benchmarks, tests and the demo), false for anything else. Throws on a bad seed.
bool parse_random_source(const std::string& source, std::string* preset, uint64_t* seed);

// A DiT^DH (or plain DiT) on its device as v(x, t, y): x, out (B, T, C) F32, y (B) I32 on that
// device. Activations live in an arena of `act_dtype` (BF16 for bf16 sampling on CUDA), rewound
// every call: sampling keeps no activations for a backward. The model must outlive the result.
diffusion::Velocity dit_velocity(models::DiTDH& model, Device device, DType act_dtype = DType::F32);

// A loaded stage-2 model as the samplers see it.
struct VelocityModel {
  std::shared_ptr<void> owner;  // keeps the model alive
  diffusion::Velocity velocity;
  int64_t grid = 0, tokens = 0, channels = 0, num_classes = 0;
  std::string description;  // "DiTDH-XL (838.9M parameters)"
};
// From a safetensors state dict (our checkpoints and exports carry "dit_config"; converted
// release files are inferred), or "random:PRESET[:SEED]" (the preset initialised as for
// training: benchmarks), moved to `device`.
VelocityModel load_velocity_model(const std::string& path, Device device,
                                  DType act_dtype = DType::F32);

}  // namespace rae::sampling
