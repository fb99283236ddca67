#include <cstdio>

#include "cli/commands.h"
#include "core/device.h"
#include "ops/cpu/blas.h"

namespace rae::cli {

int cmd_info(int, char**) {
  std::printf("rae: CUDA compiled: %s, CUDA devices: %d\n", cuda_compiled() ? "yes" : "no",
              cuda_device_count());
  // Which GEMM the CPU path runs: a generic-kernel fallback makes it several times slower.
  std::printf("CPU BLAS: %s\n", ops::cpu::blas_summary().c_str());
  return 0;
}

}  // namespace rae::cli
