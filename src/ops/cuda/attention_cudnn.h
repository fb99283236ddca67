// cuDNN fused scaled dot-product attention (flash attention on tensor cores) through the cuDNN
// frontend's graph API, for the CUDA attention op (attention.cu decides when to use it).
//
// The frontend is header-only and loads libcudnn.so.9 itself at the first call
// (NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING), so binaries start on machines without cuDNN; every
// failure (no library, no engine for the shape, a build or launch error) returns false with the
// reason in sdpa_last_error(), and the caller runs its GEMM path instead.
//
// Layouts are the op's: qkv (B, T, 3, H, D) and out/dout (B, T, H, D) as 16-bit floats (BF16 or
// FP16), lse (B, H, T) F32 = natural log-sum-exp of the scaled scores (cuDNN's "Stats", the
// same saved statistic as the CPU and the other CUDA paths). One graph per (direction, shape,
// dtype, scale, device) is built once and cached (as llm.c does).
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace rae::ops::cuda_detail {

enum class SdpaType { BF16, F16 };

struct SdpaProblem {
  int64_t B = 0, T = 0, H = 0, D = 0;
  SdpaType type = SdpaType::BF16;
  float scale = 1.f;
};

// True when this build includes the cuDNN frontend (else every call returns false).
bool sdpa_built();
// out, lse = attention(qkv). False when cuDNN cannot run the problem (nothing was written).
bool sdpa_forward(const SdpaProblem& p, const void* qkv, void* out, float* lse);
// dqkv (B, T, 3, H, D) = gradients of q, k, v, WRITTEN (not accumulated): the caller adds.
bool sdpa_backward(const SdpaProblem& p, const void* qkv, const void* out, const void* dout,
                   const float* lse, void* dqkv);
// Why the last call returned false ("" after a success); for logs and tests.
std::string sdpa_last_error();
// cuDNN's version as loaded (e.g. 91900), or 0 when it could not be loaded.
int64_t sdpa_backend_version();

// The attention op's fused path (attention_fused.cu), called by cuda::attention_forward/backward
// under AttentionImpl Auto or Cudnn: runs cuDNN on bf16 tensors as they are, and on F32 tensors
// under Precision::BF16 (converted to bf16) or, opted in with RAE_ATTENTION_TF32_FP16=1, under
// Precision::TF32 (converted to fp16, the same 10-bit mantissa as TF32; values must stay within
// fp16's range). The backward ACCUMULATES into dqkv, as the op's contract says (cuDNN writes
// into a scratch buffer that is then added), or with `overwrite` (GradMode::Overwrite) lets cuDNN
// write dqkv itself: no scratch, no add pass. False: nothing was written; run another path.
bool fused_attention_forward(const Tensor& out, float* lse, const Tensor& qkv, double scale);
bool fused_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                              const Tensor& out, const float* lse, double scale,
                              bool overwrite = false);
// How many fused forward/backward calls ran on cuDNN in this process (tests check the path).
int64_t fused_attention_calls();

}  // namespace rae::ops::cuda_detail
