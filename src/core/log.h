// Minimal leveled logging to stderr, prefixed by rank when distributed.
#pragma once
#include <string>

#include "core/error.h"

namespace rae::log {

void set_rank(int rank);  // -1: single process (no prefix)
int rank();
void set_quiet(bool quiet);
void info_str(const std::string& s);
void warn_str(const std::string& s);

template <typename... Args>
void info(Args&&... a) {
  info_str(detail::concat(std::forward<Args>(a)...));
}
template <typename... Args>
void warn(Args&&... a) {
  warn_str(detail::concat(std::forward<Args>(a)...));
}

}  // namespace rae::log
