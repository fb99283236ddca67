#include "core/device.h"

#include <mutex>

#include "core/error.h"
#include "core/log.h"

#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace rae {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0) return Device::cuda(std::stoi(s.substr(5)));
  RAE_THROW("unknown device '", s, "' (expected cpu, cuda or cuda:N)");
}

bool cuda_compiled() {
#ifdef RAE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
  static int count = [] {
#ifdef RAE_WITH_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
      (void)cudaGetLastError();
      log::info("CUDA build, but no usable GPU (", cudaGetErrorString(e),
                "): running on the CPU backend");
      return 0;
    }
    return n;
#else
    return 0;
#endif
  }();
  return count;
}

bool cuda_available() {
  return cuda_device_count() > 0;
}

}  // namespace rae
