#include "nn/module.h"

#include <cstdio>

namespace rae::nn {

std::string format_count(int64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
  return buf;
}

std::string Module::summary() const {
  return type() + ": " + format_count(ps_.num_params()) + " parameters in " +
         std::to_string(ps_.groups().size()) + " groups (" + std::to_string(block_groups().size()) +
         " blocks)";
}

}  // namespace rae::nn
