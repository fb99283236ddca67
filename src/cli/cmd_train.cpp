// rae train --config F --cache DIR --run-dir DIR [--steps N] [--precision P] [--section.key=v ...]
// Grid, channels and classes come from the cache manifest; --steps is the run's total. The run
// resumes from the newest checkpoint in --run-dir that verifies.
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "distributed/mpi_communicator.h"
#include "models/dit.h"
#include "train/config.h"
#include "train/sharded_training.h"
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
      "steps", po::value<int64_t>(), "total steps of the run (overrides train.steps)")(
      "precision", po::value<std::string>(), "fp32 | tf32 | bf16 (= --train.precision)")(
      "shard", po::value<std::string>(),
      "data parallelism under mpirun: no_shard | shard_grad_op | full_shard | hybrid_shard "
      "(default no_shard when started with several ranks)")(
      "dist.comm_dtype", po::value<std::string>()->default_value("fp32"),
      "gradients on the wire: fp32 | bf16")("dist.timeout_s",
                                            po::value<double>()->default_value(300.0),
                                            "watchdog: a collective waiting longer aborts the job")(
      "dist.node_size", po::value<int>()->default_value(0),
      "ranks per node for hybrid_shard (0: ranks sharing memory)");
  po::options_description keys = train::train_options();
  po::options_description all;
  all.add(general).add(keys);
  // --precision is a shorthand for --train.precision: renamed before parsing, so that it
  // overrides the config file like any --section.key (the first stored value wins).
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args)
    if (a == "--precision" || a.rfind("--precision=", 0) == 0) a.insert(2, "train.");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).run(), vm);
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
  std::unique_ptr<train::DistSession> dist;  // MPI data parallelism (train/sharded_training.h)
  if (vm.count("shard") || distributed::launched_with_several_ranks() ||
      train::has_sharded_checkpoint(vm["run-dir"].as<std::string>())) {
    train::DistSessionOptions o;
    if (vm.count("shard")) o.shard = vm["shard"].as<std::string>();
    o.comm_dtype = vm["dist.comm_dtype"].as<std::string>();
    o.timeout_s = vm["dist.timeout_s"].as<double>();
    o.node_size = vm["dist.node_size"].as<int>();
    dist = std::make_unique<train::DistSession>(
        o, cfg,
        cfg.to_ini() + "cache=" + vm["cache"].as<std::string>() + "\nshard=" + o.shard +
            "\ncomm_dtype=" + o.comm_dtype + "\n");
  }
  train::Trainer trainer(cfg, *source, vm["run-dir"].as<std::string>(),
                         dist ? &dist->sync() : nullptr);
  if (dist) dist->report_start(trainer.model().params());
  int64_t from = trainer.resume();
  if (from >= cfg.steps) {
    log::info("run already at step ", from, " >= ", cfg.steps, "; nothing to do");
  } else {
    trainer.run();
  }
  if (dist) dist->finish();
  return 0;
}

}  // namespace rae::cli
