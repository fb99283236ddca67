#include <cstdio>

#include "cli/commands.h"
#include "core/device.h"

namespace rae::cli {

int cmd_info(int, char**) {
  std::printf("rae: CUDA compiled: %s, CUDA devices: %d\n", cuda_compiled() ? "yes" : "no",
              cuda_device_count());
  return 0;
}

}  // namespace rae::cli
