#include "ops/precision.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace rae::ops {

namespace {
// RAE_ATTENTION's value, or Auto (with a warning for an unknown name: this runs before main, so
// it must not throw).
AttentionImpl attention_from_env() {
  const char* s = std::getenv("RAE_ATTENTION");
  if (!s || !*s) return AttentionImpl::Auto;
  for (AttentionImpl a :
       {AttentionImpl::Auto, AttentionImpl::Flash, AttentionImpl::Gemm, AttentionImpl::Cudnn})
    if (std::strcmp(s, attention_impl_name(a)) == 0) return a;
  std::fprintf(stderr, "rae: ignoring RAE_ATTENTION=%s (expected auto, flash, gemm or cudnn)\n", s);
  return AttentionImpl::Auto;
}

std::atomic<Precision> g_precision{Precision::FP32};
std::atomic<AttentionImpl> g_attention{attention_from_env()};
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
    case AttentionImpl::Cudnn:
      return "cudnn";
  }
  return "?";
}

AttentionImpl attention_impl_from_name(const std::string& s) {
  if (s == "auto") return AttentionImpl::Auto;
  if (s == "flash") return AttentionImpl::Flash;
  if (s == "gemm") return AttentionImpl::Gemm;
  if (s == "cudnn") return AttentionImpl::Cudnn;
  RAE_THROW("unknown attention implementation '", s, "' (expected auto, flash, gemm or cudnn)");
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
