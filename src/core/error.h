// Errors: every failure is an exception carrying a message that names the file, key or rank.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace rae {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_check(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

}  // namespace rae

// RAE_CHECK(cond, "message ", value, ...): throws rae::Error with location and message.
#define RAE_CHECK(cond, ...)                                                                     \
  do {                                                                                           \
    if (!(cond))                                                                                 \
      ::rae::detail::throw_check(__FILE__, __LINE__, #cond, ::rae::detail::concat(__VA_ARGS__)); \
  } while (0)

#define RAE_THROW(...) throw ::rae::Error(::rae::detail::concat(__VA_ARGS__))
