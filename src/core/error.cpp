#include "core/error.h"

namespace rae::detail {

void throw_check(const char* file, int line, const char* cond, const std::string& msg) {
  std::ostringstream os;
  os << msg;
  if (msg.empty()) os << "check failed";
  os << " [" << cond << " at " << file << ":" << line << "]";
  throw Error(os.str());
}

}  // namespace rae::detail
