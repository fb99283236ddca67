// Shared command-line parsing for subcommands: Boost.Program_options errors become rae errors
// (the caller prints "rae CMD: error: ..."), --help prints the options.
#pragma once
#include <boost/program_options.hpp>
#include <initializer_list>
#include <iostream>
#include <string>
#include <vector>

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

// The training commands' command line (rae train, rae decoder-train): `general`'s options into
// `vm`; the shorthands --precision (= --train.precision) and --shard (= --dist.shard), renamed
// before parsing so they override the config file like any --section.key; returns everything
// else, the --section.key=value overrides of the config file.
inline std::vector<std::string> parse_training_command_line(
    const boost::program_options::options_description& general, int argc, char** argv,
    boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args) {
    if (a == "--precision" || a.rfind("--precision=", 0) == 0) a.insert(2, "train.");
    if (a == "--shard" || a.rfind("--shard=", 0) == 0) a.insert(2, "dist.");
  }
  try {
    po::parsed_options parsed =
        po::command_line_parser(args).options(general).allow_unregistered().run();
    po::store(parsed, vm);
    return po::collect_unrecognized(parsed.options, po::include_positional);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
}

}  // namespace rae::cli
