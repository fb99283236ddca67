#include "ops/precision.h"

#include <atomic>

#include "core/error.h"

namespace rae::ops {

namespace {
std::atomic<Precision> g_precision{Precision::FP32};
std::atomic<AttentionImpl> g_attention{AttentionImpl::Auto};
}  // namespace

void set_attention_impl(AttentionImpl a) {
  g_attention.store(a);
}
AttentionImpl attention_impl() {
  return g_attention.load();
}

const char* attention_impl_name(AttentionImpl a) {
  switch (a) {
    case AttentionImpl::Auto:
      return "auto";
    case AttentionImpl::Flash:
      return "flash";
    case AttentionImpl::Gemm:
      return "gemm";
  }
  return "?";
}

AttentionImpl attention_impl_from_name(const std::string& s) {
  if (s == "auto") return AttentionImpl::Auto;
  if (s == "flash") return AttentionImpl::Flash;
  if (s == "gemm") return AttentionImpl::Gemm;
  RAE_THROW("unknown attention implementation '", s, "' (expected auto, flash or gemm)");
}

void set_precision(Precision p) {
  g_precision.store(p);
}
Precision precision() {
  return g_precision.load();
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32:
      return "fp32";
    case Precision::TF32:
      return "tf32";
    case Precision::BF16:
      return "bf16";
  }
  return "?";
}

Precision precision_from_name(const std::string& s) {
  if (s == "fp32") return Precision::FP32;
  if (s == "tf32") return Precision::TF32;
  if (s == "bf16") return Precision::BF16;
  RAE_THROW("unknown precision '", s, "' (expected fp32, tf32 or bf16)");
}

}  // namespace rae::ops
