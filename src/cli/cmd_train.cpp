// rae train --config F --cache DIR --run-dir DIR [--steps N] [--section.key=value ...]
// Grid, channels and classes come from the cache manifest; --steps is the run's total. The run
// resumes from the newest checkpoint in --run-dir that verifies.
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "models/dit.h"
#include "train/config.h"
#include "train/trainer.h"

namespace po = boost::program_options;

namespace rae::cli {

namespace {

// "synthetic:SAMPLESxGRIDxCHANNELSxCLASSES" gives an in-memory source (tests, benchmarks).
std::unique_ptr<train::BatchStream> open_source(const std::string& spec) {
  const std::string pre = "synthetic:";
  if (spec.rfind(pre, 0) == 0) {
    long long n, g, c, k;
    RAE_CHECK(std::sscanf(spec.c_str() + pre.size(), "%lldx%lldx%lldx%lld", &n, &g, &c, &k) == 4,
              "--cache '", spec, "': expected synthetic:SAMPLESxGRIDxCHANNELSxCLASSES");
    return std::make_unique<train::SyntheticStream>(n, g, c, k);
  }
  return train::open_latent_cache(spec);
}

}  // namespace

int cmd_train(int argc, char** argv) {
  po::options_description general("rae train options");
  general.add_options()("help,h", "show this help")("config", po::value<std::string>(),
                                                    "training config file (jobs/*.cfg)")(
      "cache", po::value<std::string>(), "latent cache directory")(
      "run-dir", po::value<std::string>(),
      "run directory (created; resumed if it has checkpoints)")(
      "steps", po::value<int64_t>(), "total steps of the run (overrides train.steps)");
  po::options_description keys = train::train_options();
  po::options_description all;
  all.add(general).add(keys);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
  if (vm.count("help")) {
    std::cout << "usage: rae train --config F --cache DIR --run-dir DIR [--steps N] "
                 "[--section.key=value ...]\n\n"
              << all << "\n";
    return 0;
  }
  for (const char* req : {"config", "cache", "run-dir"})
    RAE_CHECK(vm.count(req), "missing --", req, " (see rae train --help)");
  const std::string config_path = vm["config"].as<std::string>();
  {
    std::ifstream in(config_path);
    RAE_CHECK(in.good(), "cannot open config file '", config_path, "'");
    try {
      po::store(po::parse_config_file(in, keys, false), vm);
    } catch (const po::error& e) {
      RAE_THROW("config file '", config_path, "': ", e.what());
    }
  }
  po::notify(vm);
  train::TrainConfig cfg;
  cfg.from_variables(vm);
  if (vm.count("steps")) {
    cfg.steps = vm["steps"].as<int64_t>();
    RAE_CHECK(cfg.steps >= 0, "--steps must be >= 0, got ", cfg.steps);
  }
  models::dit_preset(cfg.preset);  // rejects an unknown preset before any work

  auto source = open_source(vm["cache"].as<std::string>());
  train::Trainer trainer(cfg, *source, vm["run-dir"].as<std::string>());
  int64_t from = trainer.resume();
  if (from >= cfg.steps) {
    log::info("run already at step ", from, " >= ", cfg.steps, "; nothing to do");
    return 0;
  }
  trainer.run();
  return 0;
}

}  // namespace rae::cli
