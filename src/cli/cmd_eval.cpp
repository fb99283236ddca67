// rae eval --samples X.npz|--images DIR --ref REF.npz --out metrics.json [...]   (mpirun or alone)
// rae eval stats --samples X.npz|--images DIR --out REF.npz [...]
// rae eval features --samples X.npz|--images DIR --out FEATURES.npz [...]
// rae eval agreement --encoder E --data DIR --samples X.npz --out F.json (cmd_eval_agreement.cpp)
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "distributed/consistency.h"
#include "distributed/mpi_communicator.h"
#include "eval/eval_job.h"
#include "ops/precision.h"

namespace rae::cli {

namespace {

namespace po = boost::program_options;

enum class Mode { Eval, Stats, Features };

po::options_description options_for(Mode mode, eval::EvalJobOptions& o, std::string& inception) {
  const char* title =
      mode == Mode::Eval
          ? "rae eval: FID, sFID, Inception Score, precision and recall of samples against a "
            "reference batch (ADM suite definitions; run under mpirun -np N or alone).\n"
            "'rae eval stats' writes a reference batch, 'rae eval features' dumps features"
      : mode == Mode::Stats
          ? "rae eval stats: write a reference .npz in the ADM layout (arr_0 or pool, mu, sigma, "
            "mu_s, sigma_s) from images or features"
          : "rae eval features: write pool (N, 2048), spatial (N, 2023) and logits (N, 1008) "
            "features of images to an .npz";
  po::options_description opts(title);
  opts.add_options()("help,h", "show this help")(
      "samples", po::value(&o.samples),
      ".npz with arr_0 uint8 images (N, H, W, 3), or pool/spatial/logits features")(
      "images", po::value(&o.images_dir), "a folder of JPEG/PNG images (recursive) instead")(
      "out", po::value(&o.out)->required(),
      mode == Mode::Eval ? "metrics.json to write" : ".npz to write");
  if (mode == Mode::Eval)
    opts.add_options()("ref", po::value(&o.ref)->required(),
                       "reference .npz: ADM reference batch (mu, sigma, mu_s, sigma_s + arr_0), "
                       "images (arr_0) or features (pool, spatial)");
  if (mode == Mode::Stats)
    opts.add_options()("ref-images", po::value(&o.ref_images)->default_value(o.ref_images),
                       "images (evenly spread) stored as arr_0 for precision/recall");
  opts.add_options()("device", po::value(&o.device)->default_value(o.device),
                     "cpu, cuda (GPU = node-local rank % count), cuda:N")(
      "inception", po::value(&inception),
      "InceptionV3 weights (safetensors; tools/convert_inception_weights.py converts "
      "torch-fidelity's .pth); needed for image inputs. 'synthetic': pseudo-random weights "
      "(benchmarks only)")("batch", po::value(&o.batch)->default_value(o.batch),
                           "images per network forward")(
      "precision", po::value(&o.precision)->default_value(o.precision),
      "GPU network math: fp32 (reference) or tf32 (tensor cores, as PyTorch's default convs)")(
      "image-size", po::value(&o.image_size)->default_value(o.image_size),
      "folders: ADM center crop to this size, e.g. 256 for ImageNet (0: keep the decoded size, "
      "which must then be the same for all)")(
      "progress", po::value(&o.progress_seconds)->default_value(o.progress_seconds),
      "seconds between progress lines when stderr is not a terminal");
  return opts;
}

int run(Mode mode, int argc, char** argv) {
  eval::EvalJobOptions o;
  std::string inception;
  po::options_description opts = options_for(mode, o, inception);
  po::variables_map vm;
  try {
    // No abbreviations: a mistyped option is an error, not a guess.
    const int style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(argc, argv).options(opts).style(style).run(), vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "rae eval: %s\n%s\n", e.what(),
                 "'rae eval --help' (or 'rae eval stats --help') lists the options");
    return 2;
  }
  auto world = distributed::MpiCommunicator::create_world();
  try {
    std::string config;
    for (int i = 1; i < argc; ++i) config += std::string(argv[i]) + '\n';
    distributed::check_consistency(*world, config);
    const Device device = eval::eval_device(o.device, world.get());
    ops::set_precision(ops::precision_from_name(o.precision));
    eval::ExtractorFactory factory = [inception, device]() {
      RAE_CHECK(!inception.empty(), "image inputs need --inception WEIGHTS.safetensors");
      return eval::make_inception_extractor(inception, device);
    };
    if (mode == Mode::Eval) {
      nlohmann::json m = eval::run_eval(o, factory, world.get());
      if (world->rank() == 0)
        std::printf("FID %.6f  sFID %.6f  IS %.6f  precision %.6f  recall %.6f  -> %s\n",
                    m["fid"].get<double>(), m["sfid"].get<double>(),
                    m["inception_score"].get<double>(), m["precision"].get<double>(),
                    m["recall"].get<double>(), o.out.c_str());
    } else if (mode == Mode::Stats) {
      eval::run_stats(o, factory, world.get());
    } else {
      eval::run_features(o, factory, world.get());
    }
  } catch (const std::exception& e) {
    // One rank's error ends the whole job now, rather than leaving the others in a collective.
    std::fprintf(stderr, "rae eval: error%s: %s\n",
                 world->size() > 1 ? (" (rank " + std::to_string(world->rank()) + ")").c_str() : "",
                 e.what());
    if (world->size() > 1) distributed::abort_job(1);
    return 1;
  }
  distributed::finalize(*world);
  return 0;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "agreement") == 0)
    return cmd_eval_agreement(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "stats") == 0) return run(Mode::Stats, argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "features") == 0)
    return run(Mode::Features, argc - 1, argv + 1);
  return run(Mode::Eval, argc, argv);
}

}  // namespace rae::cli
