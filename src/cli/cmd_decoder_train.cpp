// rae decoder-train --config F --data DIR --encoder DIR|PRESET --run-dir DIR [--steps N]
//                   [--precision P] [--shard S] [--ref REF.npz --inception W] [--eval-data DIR]
//                   [--section.key=value ...]
// Stage 1 (train/stage1.h): the RAE decoder on a frozen encoder's tokens of the images in DIR
// (an ImageFolder tree), with L1 + LPIPS + the adaptive GAN term, on the engine's trainer: the
// decoder and the discriminator sharded like `rae train`'s models, checkpoints and exact resume
// (a rerun resumes from the newest checkpoint that verifies), metrics.jsonl with every loss
// term, lambda and the discriminator's accuracy, reconstruction grids (RUN/reconstructions.png)
// and, with --ref, the EMA decoder's rFID (RUN/eval.jsonl). Under mpirun / srun every rank runs
// this. SIGUSR1 or SIGTERM: checkpoint at the next step boundary and exit 75, as `rae train`.
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "train/config.h"
#include "train/dist_session.h"
#include "train/image_stream.h"
#include "train/run_lock.h"
#include "train/stage1.h"
#include "train/stage1_config.h"
#include "train/stage1_monitor.h"
#include "train/stop_request.h"
#include "train/trainer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rae::cli {

int cmd_decoder_train(int argc, char** argv) {
  po::options_description general("rae decoder-train options");
  general.add_options()("help,h", "show this help")("config", po::value<std::string>(),
                                                    "stage-1 config file (jobs/decoder-*.cfg)")(
      "data", po::value<std::string>(),
      "training images (ImageFolder tree: DIR/train/<class>/...)")(
      "encoder", po::value<std::string>(),
      "frozen encoder: a Hugging Face model directory (DINOv2-reg, SigLIP2, MAE) or tiny-random")(
      "run-dir", po::value<std::string>(),
      "run directory (created; resumed if it has checkpoints)")(
      "steps", po::value<int64_t>(), "total steps of the run (overrides train.steps)")(
      "ref", po::value<std::string>(), "reference .npz for the rFID of reconstructions (rae eval)")(
      "inception", po::value<std::string>()->default_value(""),
      "InceptionV3 weights for rFID (tools/convert_inception_weights.py) or 'synthetic'")(
      "eval-data", po::value<std::string>(),
      "images of the grids and of rFID (default: --data), ADM center crop to the image size");
  po::variables_map vm;  // --precision and --shard as rae train's shorthands
  const std::vector<std::string> overrides = parse_training_command_line(general, argc, argv, vm);
  const po::options_description s1_keys = train::stage1_options();
  if (vm.count("help")) {
    std::cout << "usage: rae decoder-train --config F --data DIR --encoder DIR --run-dir DIR "
                 "[--steps N] [--precision P] [--shard S] [--ref REF.npz --inception W] "
                 "[--section.key=value ...]\n\n"
              << general << "\n"
              << s1_keys << "\n"
              << train::train_options() << "\n";
    return 0;
  }
  train::install_stop_handlers();
  for (const char* req : {"config", "data", "encoder", "run-dir"})
    RAE_CHECK(vm.count(req), "missing --", req, " (see rae decoder-train --help)");
  const std::string config_path = vm["config"].as<std::string>();
  train::check_config_file(config_path, &s1_keys);
  po::variables_map keys;
  train::TrainConfig cfg = train::parse_train_config(config_path, overrides, &s1_keys, &keys);
  train::Stage1Config s1;
  s1.from_variables(keys);
  if (vm.count("steps")) {
    cfg.steps = vm["steps"].as<int64_t>();
    RAE_CHECK(cfg.steps >= 0, "--steps must be >= 0, got ", cfg.steps);
  }
  const std::string data = vm["data"].as<std::string>(), encoder = vm["encoder"].as<std::string>();
  const std::string run_dir = vm["run-dir"].as<std::string>();
  train::ImageStream stream(data, s1.image_size, s1.resize_size());
  auto dist = train::DistSession::create(
      cfg, cfg.to_ini() + s1.to_ini() + "data=" + data + "\nencoder=" + encoder + "\n");
  const int rank = dist ? dist->comm().rank() : 0;
  auto run_lock = train::lock_run_dir(run_dir, rank);
  train::StopScope stop(dist ? &dist->world() : nullptr);
  auto objective = std::make_unique<train::Stage1Objective>(s1, encoder);
  train::Stage1Objective& obj = *objective;
  train::Trainer trainer(cfg, stream, run_dir, dist ? &dist->comm() : nullptr,
                         std::move(objective));
  if (rank == 0) {  // the stage-1 keys beside the trainer's config.cfg
    fs::create_directories(run_dir);
    write_file_atomic((fs::path(run_dir) / "stage1.cfg").string(), s1.to_ini());
  }
  train::Stage1MonitorOptions mo;
  mo.run_dir = run_dir;
  mo.images = vm.count("eval-data") ? vm["eval-data"].as<std::string>() : data;
  mo.ref = vm.count("ref") ? vm["ref"].as<std::string>() : "";
  mo.inception = vm["inception"].as<std::string>();
  mo.device = cfg.device;
  mo.total_steps = cfg.steps;
  RAE_CHECK(mo.ref.empty() || !mo.inception.empty(),
            "--ref needs --inception WEIGHTS.safetensors (or synthetic) for the rFID network");
  const int64_t from = trainer.resume();
  train::Stage1Monitor monitor(trainer, obj, mo, dist ? &dist->world() : nullptr);
  trainer.set_step_callback([&](const train::StepStats& s) { monitor.on_step(s); });
  if (from >= cfg.steps) {
    if (rank == 0) log::info("run already at step ", from, " >= ", cfg.steps, "; nothing to do");
  } else {
    trainer.run();
  }
  if (dist) dist->finish();
  const int status = stop.exit_status(trainer.state().step >= cfg.steps);
  if (status != 0 && rank == 0)
    log::info("stopped at step ", trainer.state().step, " of ", cfg.steps,
              " on a stop request, checkpoint written; exit status ", status,
              " (rerun or requeue to resume)");
  return status;
}

}  // namespace rae::cli
