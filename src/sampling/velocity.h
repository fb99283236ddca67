// Models as velocity fields for the samplers (diffusion/samplers.h): the samplers know nothing
// of the model type, guidance wraps these.
#pragma once
#include <memory>

#include "diffusion/samplers.h"
#include "models/dit.h"
#include "nn/arena.h"

namespace rae::sampling {

// A DiT^DH (or plain DiT) on its device as v(x, t, y): x, out (B, T, C) F32, y (B) I32 on that
// device. Activations live in an arena of `act_dtype` (BF16 for bf16 sampling on CUDA), rewound
// every call: sampling keeps no activations for a backward. The model must outlive the result.
diffusion::Velocity dit_velocity(models::DiTDH& model, Device device, DType act_dtype = DType::F32);

}  // namespace rae::sampling
