// The one dispatch rule: an op runs on the backend of its tensors' device.
#pragma once
#include "core/error.h"
#include "tensor/tensor.h"

// RAE_DISPATCH(tensor, name, args...): calls ops::cuda::name(args) for CUDA tensors (throwing a
// clear error in a build without CUDA) and ops::cpu::name(args) otherwise.
#ifdef RAE_WITH_CUDA
#define RAE_DISPATCH(t, name, ...) \
  ((t).is_cuda() ? ::rae::ops::cuda::name(__VA_ARGS__) : ::rae::ops::cpu::name(__VA_ARGS__))
#else
#define RAE_DISPATCH(t, name, ...)                                                     \
  ((t).is_cuda() ? (RAE_THROW(#name ": CUDA tensor in a build without CUDA"),           \
                    ::rae::ops::cpu::name(__VA_ARGS__))                                \
                 : ::rae::ops::cpu::name(__VA_ARGS__))
#endif
