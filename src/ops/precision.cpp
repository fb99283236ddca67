#include "ops/precision.h"

#include <atomic>

#include "core/error.h"

namespace rae::ops {

namespace {
std::atomic<Precision> g_precision{Precision::FP32};
}

void set_precision(Precision p) { g_precision.store(p); }
Precision precision() { return g_precision.load(); }

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
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
