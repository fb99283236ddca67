// Shared command-line parsing for subcommands: Boost.Program_options errors become rae errors
// (the caller prints "rae CMD: error: ..."), --help prints the options.
#pragma once
#include <boost/program_options.hpp>
#include <initializer_list>
#include <iostream>

#include "core/error.h"

namespace rae::cli {

// Parses argv into `vm`. Returns false when --help was given (the options are printed then).
inline bool parse_options(const boost::program_options::options_description& d, int argc,
                          char** argv, boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  try {
    po::store(po::command_line_parser(argc, argv).options(d).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
  if (vm.count("help")) {
    std::cout << d << "\n";
    return false;
  }
  return true;
}

// Refuses a missing required option, naming it.
inline void require(const boost::program_options::variables_map& vm,
                    std::initializer_list<const char*> names) {
  for (const char* k : names) RAE_CHECK(vm.count(k), "missing --", k);
}

}  // namespace rae::cli
