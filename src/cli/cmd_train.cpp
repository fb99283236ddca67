// rae train --config F --cache DIR --run-dir DIR [--steps N] [--precision P] [--shard S]
//           [--section.key=value ...]
// Grid, channels and classes come from the data; --steps is the run's total. The run resumes
// from the newest checkpoint in --run-dir that verifies; a run directory with checkpoints of
// which none verifies is refused unless --restart-from-scratch (train/run_dir.h). Under mpirun /
// srun every rank runs
// this; --shard (= --dist.shard) picks the strategy.
// SIGUSR1 or SIGTERM: checkpoint at the next step boundary (all ranks at the same step) and
// exit with train::kExitStopped (75).
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "models/registry.h"
#include "train/config.h"
#include "train/dist_session.h"
#include "train/run_lock.h"
#include "train/stop_request.h"
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
      "cache", po::value<std::string>(), "latent cache directory (or synthetic:NxGxCxK)")(
      "run-dir", po::value<std::string>(),
      "run directory (created; resumed if it has checkpoints)")(
      "steps", po::value<int64_t>(), "total steps of the run (overrides train.steps)")(
      "restart-from-scratch",
      "when --run-dir has checkpoints but none is valid: move them and the run's files into "
      "RUN/discarded-<time>/ and start from step 0 (without it: an error naming each; with a "
      "valid checkpoint the run resumes and this is ignored)");
  po::variables_map vm;
  const std::vector<std::string> overrides = parse_training_command_line(general, argc, argv, vm);
  if (vm.count("help")) {
    std::cout << "usage: rae train --config F --cache DIR --run-dir DIR [--steps N] "
                 "[--precision P] [--shard S] [--section.key=value ...]\n\n"
              << general << "\n"
              << train::train_options() << "\n";
    return 0;
  }
  train::install_stop_handlers();  // a signal from now on stops the run at a step boundary
  for (const char* req : {"config", "cache", "run-dir"})
    RAE_CHECK(vm.count(req), "missing --", req, " (see rae train --help)");
  const std::string config_path = vm["config"].as<std::string>();
  train::check_config_file(config_path);
  train::TrainConfig cfg = train::parse_train_config(config_path, overrides);
  if (vm.count("steps")) {
    cfg.steps = vm["steps"].as<int64_t>();
    RAE_CHECK(cfg.steps >= 0, "--steps must be >= 0, got ", cfg.steps);
  }
  // An unknown preset, an unknown override key or an invalid config value stops here, before
  // any work (the grid, channels and classes of the data are checked when the model is built).
  models::check_model_spec(models::with_overrides(models::model_preset(cfg.preset),
                                                  nlohmann::json::parse(cfg.model_overrides)));

  const std::string cache = vm["cache"].as<std::string>();
  auto source = open_source(cache);
  auto dist = train::DistSession::create(cfg, cfg.to_ini() + "cache=" + cache + "\n");
  auto run_lock =
      train::lock_run_dir(vm["run-dir"].as<std::string>(), dist ? dist->comm().rank() : 0);
  // After MPI is up (its runtime must not replace the handlers); agreement over every rank
  // through the MPI world (CPU tensors, whatever the training communicator).
  train::StopScope stop(dist ? &dist->world() : nullptr);
  train::Trainer trainer(cfg, *source, vm["run-dir"].as<std::string>(),
                         dist ? &dist->comm() : nullptr);
  const int64_t from = trainer.resume(vm.count("restart-from-scratch") > 0);
  if (from >= cfg.steps) {
    if (trainer.rank() == 0)
      log::info("run already at step ", from, " >= ", cfg.steps, "; nothing to do");
  } else {
    trainer.run();
  }
  if (dist) dist->finish();
  const int status = stop.exit_status(trainer.state().step >= cfg.steps);
  if (status != 0 && (!dist || dist->world().rank() == 0))
    log::info("stopped at step ", trainer.state().step, " of ", cfg.steps,
              " on a stop request, checkpoint written; exit status ", status,
              " (rerun or requeue to resume)");
  return status;
}

}  // namespace rae::cli
