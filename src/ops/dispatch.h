// The one dispatch rule: an op runs on the backend of its tensors' device.
#pragma once
#include "core/error.h"
#include "ops/profile.h"
#include "tensor/tensor.h"

// RAE_DISPATCH(tensor, name, args...): calls ops::cuda::name(args) for CUDA tensors (throwing a
// clear error in a build without CUDA) and ops::cpu::name(args) otherwise.
// With RAE_OP_PROFILE the call is wrapped in an ops::profile::Scope named after the op (a
// temporary that lives to the end of the full expression, i.e. past the call; see profile.h).
// RAE_DISPATCH_FLOPS(flops, ...) also declares the call's FLOPs (evaluated only while profiling).
#ifdef RAE_OP_PROFILE
#define RAE_DISPATCH(t, name, ...) \
  (::rae::ops::profile::Scope(#name, (t)), RAE_DISPATCH_UNTIMED(t, name, __VA_ARGS__))
#define RAE_DISPATCH_FLOPS(flops, t, name, ...)                                       \
  (::rae::ops::profile::Scope(#name, (t), ::rae::ops::profile::on() ? (flops) : 0.0), \
   RAE_DISPATCH_UNTIMED(t, name, __VA_ARGS__))
#else
#define RAE_DISPATCH(t, name, ...) RAE_DISPATCH_UNTIMED(t, name, __VA_ARGS__)
// (the FLOPs expression stays in the code, never evaluated: no unused-value warnings)
#define RAE_DISPATCH_FLOPS(flops, t, name, ...) \
  ((void)(false ? (flops) : 0.0), RAE_DISPATCH_UNTIMED(t, name, __VA_ARGS__))
#endif

#ifdef RAE_WITH_CUDA
#define RAE_DISPATCH_UNTIMED(t, name, ...) \
  ((t).is_cuda() ? ::rae::ops::cuda::name(__VA_ARGS__) : ::rae::ops::cpu::name(__VA_ARGS__))
#else
#define RAE_DISPATCH_UNTIMED(t, name, ...)                                    \
  ((t).is_cuda() ? (RAE_THROW(#name ": CUDA tensor in a build without CUDA"), \
                    ::rae::ops::cpu::name(__VA_ARGS__))                       \
                 : ::rae::ops::cpu::name(__VA_ARGS__))
#endif
