// rae export --run-dir DIR [--checkpoint DIR] [--model NAME] [--ema] --out FILE
// Writes one model's weights (or EMA weights) of a run's newest valid checkpoint, whatever the
// strategy and world size that wrote it, as one safetensors file with the release's tensor
// names, the buffers, the latent statistics when the run normalised its latents, and the
// model_type / model_config metadata that `rae sample` builds the model from.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "train/checkpoint.h"

namespace po = boost::program_options;

namespace rae::cli {

int cmd_export(int argc, char** argv) {
  po::options_description opts("rae export options");
  opts.add_options()("help,h", "show this help")("run-dir", po::value<std::string>(),
                                                 "run directory (its newest valid checkpoint)")(
      "checkpoint", po::value<std::string>(), "a checkpoint directory instead of --run-dir")(
      "model", po::value<std::string>()->default_value("model"),
      "which trained model (stage 2: model)")("ema", po::bool_switch(),
                                              "export the EMA weights instead of the trained ones")(
      "out", po::value<std::string>(), "output .safetensors file");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
  if (vm.count("help")) {
    std::cout << "usage: rae export --run-dir DIR [--ema] --out FILE\n\n" << opts << "\n";
    return 0;
  }
  RAE_CHECK(vm.count("out"), "missing --out (see rae export --help)");
  RAE_CHECK(vm.count("run-dir") + vm.count("checkpoint") == 1,
            "give exactly one of --run-dir and --checkpoint");
  std::string dir;
  if (vm.count("checkpoint")) {
    dir = vm["checkpoint"].as<std::string>();
  } else {
    auto d = train::latest_valid_checkpoint(vm["run-dir"].as<std::string>());
    RAE_CHECK(d, "no valid checkpoint in ", vm["run-dir"].as<std::string>());
    dir = *d;
  }
  const bool ema = vm["ema"].as<bool>();
  train::export_checkpoint(dir, vm["model"].as<std::string>(), ema, vm["out"].as<std::string>());
  log::info("exported ", ema ? "EMA" : "model", " weights of ", dir, " to ",
            vm["out"].as<std::string>());
  return 0;
}

}  // namespace rae::cli
