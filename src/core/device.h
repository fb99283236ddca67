// Where a tensor lives. A CUDA build runs on a machine without a GPU on the CPU backend.
#pragma once
#include <string>

namespace rae {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
};

Device parse_device(const std::string& s);  // "cpu", "cuda", "cuda:1"

// True when this binary was built with CUDA.
bool cuda_compiled();
// True when built with CUDA and at least one GPU answers. Says once, on first call, when a CUDA
// build finds no GPU and falls back to the CPU.
bool cuda_available();
int cuda_device_count();

}  // namespace rae
