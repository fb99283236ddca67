// Global matmul precision for the CUDA GEMMs (cuBLASLt). BF16 tensors always multiply in bf16
// with F32 accumulation; this setting chooses how F32 tensors multiply:
//   fp32: full F32 (CUBLAS_COMPUTE_32F), the reference mode and the default;
//   tf32: TF32 tensor cores with F32 accumulation (the release's stage-2 recommendation);
//   bf16: inputs rounded to bf16 inside cuBLAS (CUBLAS_COMPUTE_32F_FAST_16BF).
// CPU ops ignore it.
#pragma once
#include <string>

namespace rae::ops {

enum class Precision { FP32, TF32, BF16 };

void set_precision(Precision p);
Precision precision();
const char* precision_name(Precision p);              // "fp32", "tf32", "bf16"
Precision precision_from_name(const std::string& s);  // inverse; throws naming the string

// CUDA attention implementation: Flash (the fused CUDA-core kernel: O(T) memory, F32 math),
// Gemm (cuBLAS tensor-core GEMMs for QK^T, PV and the backward products with the T x T scores
// materialized in chunks; bf16 probabilities for bf16 inputs), Cudnn (cuDNN's fused flash
// attention on tensor cores, through the cuDNN frontend: bf16 tensors, and F32 tensors under the
// bf16 precision, converted to bf16; head dims that are multiples of 8 up to 256), Auto (Cudnn
// where it can run, else Gemm for T >= 128, where tensor cores pay off, else Flash). Cudnn falls
// back like Auto where cuDNN cannot run (not built, library missing, shape unsupported). Results
// agree to the dtype's tolerance; CPU ops ignore it. The start-up value comes from the
// environment variable RAE_ATTENTION (auto, flash, gemm or cudnn; default auto), the run-time
// switch between the fused and the GEMM path without a rebuild.
enum class AttentionImpl { Auto, Flash, Gemm, Cudnn };
void set_attention_impl(AttentionImpl a);
AttentionImpl attention_impl();
const char* attention_impl_name(AttentionImpl a);  // "auto", "flash", "gemm", "cudnn"
AttentionImpl attention_impl_from_name(const std::string& s);

// Sets the precision for the lifetime of the guard, restoring the previous one after.
class PrecisionGuard {
 public:
  explicit PrecisionGuard(Precision p) : saved_(precision()) { set_precision(p); }
  ~PrecisionGuard() { set_precision(saved_); }
  PrecisionGuard(const PrecisionGuard&) = delete;
  PrecisionGuard& operator=(const PrecisionGuard&) = delete;

 private:
  Precision saved_;
};

}  // namespace rae::ops
