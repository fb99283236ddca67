#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace rae::log {
namespace {
int g_rank = -1;
bool g_quiet = false;
std::mutex g_mu;
void emit(const char* level, const std::string& s) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_rank >= 0)
    std::fprintf(stderr, "[rank %d] %s%s\n", g_rank, level, s.c_str());
  else
    std::fprintf(stderr, "%s%s\n", level, s.c_str());
  std::fflush(stderr);
}
}  // namespace

void set_rank(int r) {
  g_rank = r;
}
int rank() {
  return g_rank;
}
void set_quiet(bool q) {
  g_quiet = q;
}
void info_str(const std::string& s) {
  if (!g_quiet) emit("", s);
}
void warn_str(const std::string& s) {
  emit("warning: ", s);
}

}  // namespace rae::log
