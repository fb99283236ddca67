// The CPU BLAS library: one-time set-up and what it reports about itself (src/ops/cpu/blas.h).
#include "ops/cpu/blas.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace rae::ops::cpu {

void blas_init() {
  // The library's own threads would compete with oneTBB's (and spin while waiting for work);
  // gemm_rm parallelises large GEMMs itself, over tiles.
  static const bool done = [] {
    RAE_BLAS(openblas_set_num_threads)(1);
    return true;
  }();
  (void)done;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "AVX-512";
    case Isa::kAvx2:
      return "AVX2";
    case Isa::kAvx:
      return "AVX";
    default:
      return "baseline SSE";
  }
}

Isa cpu_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  if (__builtin_cpu_supports("avx")) return Isa::kAvx;
#endif
  return Isa::kBaseline;
}

Isa openblas_kernel_isa(const std::string& core) {
  std::string c = core;
  std::transform(c.begin(), c.end(), c.begin(), [](unsigned char ch) { return std::tolower(ch); });
  // OpenBLAS's x86-64 kernel families (driver/others/dynamic.c), by the vectors they use.
  for (const char* k : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == k) return Isa::kAvx512;
  for (const char* k : {"haswell", "zen"})
    if (c == k) return Isa::kAvx2;
  for (const char* k : {"sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"})
    if (c == k) return Isa::kAvx;
  return Isa::kBaseline;  // Prescott, Core2, Nehalem, ... and anything unknown
}

BlasInfo blas_info() {
  blas_init();
  BlasInfo info;
  info.config = RAE_BLAS(openblas_get_config)();
  info.kernel = RAE_BLAS(openblas_get_corename)();
  info.kernel_isa = openblas_kernel_isa(info.kernel);
  info.threads = RAE_BLAS(openblas_get_num_threads)();
  // config: "OpenBLAS <version> DYNAMIC_ARCH ..."
  std::istringstream words(info.config);
  std::string name, version;
  words >> name >> version;
  info.library = name + " " + version + " (scipy-openblas32)";
  return info;
}

std::string blas_summary() {
  const BlasInfo b = blas_info();
  std::ostringstream s;
  s << b.library << ", kernels " << b.kernel << " (" << isa_name(b.kernel_isa) << "; this CPU "
    << isa_name(cpu_isa()) << "), BLAS threads " << b.threads
    << " (parallel GEMM tiles on oneTBB); build: " << b.config;
  return s.str();
}

}  // namespace rae::ops::cpu
