// A config struct's keys as one table of member pointers: registration on a command line
// (Boost.Program_options, "section.key"), filling from parsed values, non-finite checks and the
// effective config as INI text all come from the table. Stage 1's keys (train/stage1_config.h)
// use it.
#pragma once
#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <sstream>
#include <type_traits>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"

namespace rae::train {

template <class S>
struct ConfigKey {
  const char* name;  // "section.key"
  std::variant<int64_t S::*, double S::*, std::string S::*, bool S::*> member;
  const char* help;
};

// Shortest text that reads back to the same double.
inline std::string shortest_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

template <class S>
boost::program_options::options_description key_options(const std::vector<ConfigKey<S>>& keys,
                                                        const char* caption) {
  namespace po = boost::program_options;
  po::options_description d(caption);
  const S defaults{};
  for (const ConfigKey<S>& k : keys) {
    std::visit(
        [&](auto m) {
          using T = std::remove_cvref_t<decltype(defaults.*m)>;
          if constexpr (std::is_same_v<T, double>)
            d.add_options()(
                k.name, po::value<T>()->default_value(defaults.*m, shortest_double(defaults.*m)),
                k.help);
          else
            d.add_options()(k.name, po::value<T>()->default_value(defaults.*m), k.help);
        },
        k.member);
  }
  return d;
}

// Sets the members of the keys present in `vm`; refuses non-finite numbers, naming the key.
template <class S>
void fill_keys(S& s, const std::vector<ConfigKey<S>>& keys,
               const boost::program_options::variables_map& vm) {
  for (const ConfigKey<S>& k : keys) {
    if (!vm.count(k.name)) continue;
    std::visit(
        [&](auto m) {
          using T = std::remove_cvref_t<decltype(s.*m)>;
          s.*m = vm[k.name].template as<T>();
          if constexpr (std::is_same_v<T, double>)
            RAE_CHECK(std::isfinite(s.*m), "config key '", k.name, "': value ", s.*m,
                      " must be a finite number");
        },
        k.member);
  }
}

// Every key as "[section]\nkey = value" lines, sections in table order.
template <class S>
std::string keys_to_ini(const S& s, const std::vector<ConfigKey<S>>& keys) {
  std::ostringstream os;
  std::string section;
  for (const ConfigKey<S>& k : keys) {
    const std::string name = k.name;
    const auto dot = name.find('.');
    const std::string sec = name.substr(0, dot);
    if (sec != section) os << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
    section = sec;
    os << name.substr(dot + 1) << " = ";
    std::visit(
        [&](auto m) {
          using T = std::remove_cvref_t<decltype(s.*m)>;
          if constexpr (std::is_same_v<T, double>)
            os << shortest_double(s.*m);
          else if constexpr (std::is_same_v<T, bool>)
            os << (s.*m ? "true" : "false");
          else
            os << s.*m;
        },
        k.member);
    os << "\n";
  }
  return os.str();
}

}  // namespace rae::train
