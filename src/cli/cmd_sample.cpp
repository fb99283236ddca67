// mpirun -np N rae sample --model F --decoder F --stats F --num-per-class K [--classes LIST]
//   --out DIR [--guide-model F] [--sampler euler|heun|sde] [--steps 50] [--cfg-scale S]
//   [--cfg-interval T0,T1] [--batch B] [--device cuda|cpu] [--png] [--noise-file F] ...
// The distributed, resumable sampling job (sampling/sample_job.h): samples split across ranks by
// global index, decoded to images, written as PNGs (optional), grid.png and the ADM samples.npz.
#include <boost/program_options.hpp>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "diffusion/flow.h"
#include "distributed/mpi_communicator.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "sampling/decode.h"
#include "sampling/sample_job.h"
#include "sampling/velocity.h"
#include "train/checkpoint.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rae::cli {

namespace {

// "1,2,7" (and "0-9" ranges when `ranges`): non-negative integers; errors name the option and
// the offending item.
std::vector<int32_t> parse_int_list(const char* opt, const std::string& text, bool ranges) {
  std::vector<int32_t> out;
  RAE_CHECK(!text.empty(), "--", opt, " is empty");
  std::stringstream ss(text);
  std::string item;
  int pos = 0;
  auto number = [&](const std::string& s) -> int64_t {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    RAE_CHECK(!s.empty() && used == s.size() && s.find_first_of("+ ") == std::string::npos, "--",
              opt, ": '", s, "' (item ", pos, " of '", text, "') is not an integer");
    RAE_CHECK(v >= 0 && v < (1LL << 31), "--", opt, ": ", v, " (item ", pos, " of '", text,
              "') is not a class index (>= 0)");
    return v;
  };
  while (std::getline(ss, item, ',')) {
    ++pos;
    RAE_CHECK(!item.empty(), "--", opt, ": empty item ", pos, " in '", text, "'");
    const size_t dash = ranges ? item.find('-', 1) : std::string::npos;
    if (dash == std::string::npos) {
      out.push_back(static_cast<int32_t>(number(item)));
      continue;
    }
    const int64_t a = number(item.substr(0, dash)), b = number(item.substr(dash + 1));
    RAE_CHECK(a <= b, "--", opt, ": range '", item, "' runs backwards");
    for (int64_t v = a; v <= b; ++v) out.push_back(static_cast<int32_t>(v));
  }
  RAE_CHECK(text.back() != ',', "--", opt, ": trailing ',' in '", text, "'");
  return out;
}

// --model: a safetensors file, a checkpoint directory, or a run directory (its newest valid
// checkpoint); EMA weights unless --no-ema.
std::string resolve_model(const std::string& p, bool ema) {
  if (fs::is_regular_file(p)) return p;
  RAE_CHECK(fs::is_directory(p), "--model ", p, ": no such file or directory");
  const std::string name = ema ? "ema.safetensors" : "model.safetensors";
  if (fs::exists(fs::path(p) / name)) return (fs::path(p) / name).string();
  auto ck = train::latest_valid_checkpoint(p);
  RAE_CHECK(ck.has_value(), "--model ", p,
            ": not a safetensors file, a checkpoint directory (with ", name,
            ") or a run directory with checkpoints (a sharded run: `rae export` it first)");
  return (fs::path(*ck) / name).string();
}

double finite_option(const po::variables_map& vm, const char* name) {
  const double v = vm[name].as<double>();
  RAE_CHECK(std::isfinite(v), "--", name, " must be a finite number, got ", v);
  return v;
}

}  // namespace

int cmd_sample(int argc, char** argv) {
  po::options_description d(
      "rae sample: class-conditional samples from a DiT^DH, decoded to images (run under "
      "mpirun -np N, or alone; a rerun resumes)");
  // clang-format off
  d.add_options()
      ("help,h", "show this help")
      ("model", po::value<std::string>(),
       "DiT^DH safetensors, checkpoint dir, run dir, or random:PRESET[:SEED]")
      ("no-ema", "use model.safetensors of a checkpoint/run dir instead of ema.safetensors")
      ("guide-model", po::value<std::string>(), "AutoGuidance guide model (e.g. DiT^DH-S)")
      ("decoder", po::value<std::string>(),
       "stage-1 decoder safetensors or random:PRESET[:SEED]; without it only latents are kept")
      ("stats", po::value<std::string>(), "latent statistics (mean/var); 'none' for none")
      ("pixel-norm", po::value<std::string>(),
       "encoder normalisation to undo: imagenet or siglip (default: the decoder's, imagenet)")
      ("out", po::value<std::string>(), "output directory (created; a rerun resumes)")
      ("num-per-class", po::value<int64_t>(), "samples per class")
      ("classes", po::value<std::string>(), "classes, e.g. 0,5,9 or 0-9 (default: all)")
      ("labels", po::value<std::string>(), "explicit labels, one sample each (instead of the above)")
      ("sampler", po::value<std::string>()->default_value("euler"), "euler, heun or sde")
      ("steps", po::value<int>()->default_value(50), "time grid points (the release's num_steps)")
      ("cfg-scale", po::value<double>()->default_value(1.0),
       "guidance scale (> 1: CFG, or AutoGuidance with --guide-model)")
      ("cfg-interval", po::value<std::string>(), "guidance interval T_MIN,T_MAX (t = 1 is noise)")
      ("cfg-t-min", po::value<double>()->default_value(0.0), "guidance interval start")
      ("cfg-t-max", po::value<double>()->default_value(1.0), "guidance interval end")
      ("shift-base", po::value<double>()->default_value(4096), "time shift base")
      ("shift-dim", po::value<int64_t>()->default_value(0), "time shift dim (0: tokens x channels)")
      ("sde-diffusion", po::value<std::string>()->default_value("sigma"),
       "SDE diffusion form: sigma, linear, constant, decreasing, increasing-decreasing")
      ("sde-norm", po::value<double>()->default_value(1.0), "SDE diffusion norm")
      ("sde-last-step", po::value<std::string>()->default_value("mean"), "mean, euler or none")
      ("sde-last-step-size", po::value<double>()->default_value(0.04, "0.04"), "SDE last step size")
      ("seed", po::value<uint64_t>()->default_value(0), "noise seed")
      ("noise-file", po::value<std::string>(), "initial (and SDE) noise from a safetensors file")
      ("batch", po::value<int64_t>()->default_value(16), "samples per forward (per rank)")
      ("chunk", po::value<int64_t>()->default_value(0), "samples per chunk file (0: --batch)")
      ("device", po::value<std::string>()->default_value("cpu"),
       "cpu, cuda (GPU local rank % count) or cuda:N")
      ("precision", po::value<std::string>()->default_value("fp32"), "fp32, tf32 or bf16 (CUDA)")
      ("png", "also write one PNG per sample (png/NNNNNN.png)")
      ("save-latents", "also keep the latents (latents.npz)")
      ("grid-rows", po::value<int>()->default_value(16), "classes in grid.png")
      ("grid-cols", po::value<int>()->default_value(8), "samples per class in grid.png")
      ("progress", po::value<double>()->default_value(10), "seconds between progress lines")
      ("report", po::value<std::string>(), "write this rank's timings as JSON (benchmarks)");
  // clang-format on
  po::variables_map vm;
  if (!parse_options(d, argc, argv, vm)) return 0;
  require(vm, {"model", "out"});
  sampling::SampleJobOptions o;
  const std::string model_arg = vm["model"].as<std::string>();
  models::DiTConfig mc;
  std::string preset;
  uint64_t seed = 0;
  if (sampling::parse_random_source(model_arg, &preset, &seed)) {  // benchmarks
    o.model_path = model_arg;
    mc = models::dit_preset(preset);
  } else {
    o.model_path = resolve_model(model_arg, !vm.count("no-ema"));
    safetensors::File header = safetensors::load(o.model_path);
    mc = models::infer_dit_config(header.tensors, header.metadata);
  }
  if (vm.count("guide-model")) o.guide_model_path = vm["guide-model"].as<std::string>();
  if (vm.count("decoder")) {
    o.decoder = vm["decoder"].as<std::string>();
    RAE_CHECK(vm.count("stats"),
              "--decoder needs --stats (the latent statistics the model was "
              "trained with, or 'none')");
  }
  if (vm.count("stats") && vm["stats"].as<std::string>() != "none")
    o.stats_path = vm["stats"].as<std::string>();
  o.out_dir = vm["out"].as<std::string>();
  if (vm.count("pixel-norm")) {
    o.pixel_norm = vm["pixel-norm"].as<std::string>();
    std::array<float, 3> m, sd;
    sampling::pixel_norm_from_name(o.pixel_norm, &m, &sd);  // refuses unknown names now
  }

  // Labels: classes x num-per-class (class-major), or explicit.
  if (vm.count("labels")) {
    RAE_CHECK(!vm.count("classes") && !vm.count("num-per-class"),
              "--labels gives every sample's label: do not combine it with --classes or "
              "--num-per-class");
    o.labels = parse_int_list("labels", vm["labels"].as<std::string>(), false);
  } else {
    RAE_CHECK(vm.count("num-per-class"),
              "give --num-per-class K (with --classes, default all "
              "classes) or --labels");
    o.num_per_class = vm["num-per-class"].as<int64_t>();
    RAE_CHECK(o.num_per_class > 0, "--num-per-class must be > 0, got ", o.num_per_class);
    std::vector<int32_t> classes;
    if (vm.count("classes")) {
      classes = parse_int_list("classes", vm["classes"].as<std::string>(), true);
    } else {
      for (int64_t c = 0; c < mc.num_classes; ++c) classes.push_back(static_cast<int32_t>(c));
    }
    for (int32_t c : classes)
      for (int64_t k = 0; k < o.num_per_class; ++k) o.labels.push_back(c);
  }
  // Label num_classes is the null class (unconditional samples).
  for (int32_t y : o.labels)
    RAE_CHECK(y <= mc.num_classes, "--", vm.count("labels") ? "labels" : "classes", ": ", y,
              " is not a class of the model (0..", mc.num_classes - 1, ", or ", mc.num_classes,
              " for the null class)");

  // Sampler and guidance.
  o.sampler.kind = diffusion::sampler_kind_from_name(vm["sampler"].as<std::string>());
  o.sampler.num_steps = vm["steps"].as<int>();
  const double base = finite_option(vm, "shift-base");
  RAE_CHECK(base > 0, "--shift-base must be > 0, got ", base);
  int64_t dim = vm["shift-dim"].as<int64_t>();
  RAE_CHECK(dim >= 0, "--shift-dim must be >= 0, got ", dim);
  if (dim == 0) dim = mc.tokens() * mc.in_channels;
  o.sampler.shift = diffusion::time_shift(dim, base);
  o.sampler.diffusion = diffusion::diffusion_form_from_name(vm["sde-diffusion"].as<std::string>());
  o.sampler.diffusion_norm = finite_option(vm, "sde-norm");
  o.sampler.last_step = diffusion::last_step_from_name(vm["sde-last-step"].as<std::string>());
  o.sampler.last_step_size = finite_option(vm, "sde-last-step-size");
  const double scale = vm["cfg-scale"].as<double>();
  RAE_CHECK(std::isfinite(scale), "--cfg-scale must be a finite number, got ", scale);
  RAE_CHECK(scale >= 1, "--cfg-scale must be >= 1 (the release samples unguided below 1), got ",
            scale);
  o.guidance.scale = scale;
  o.guidance.t_min = finite_option(vm, "cfg-t-min");
  o.guidance.t_max = finite_option(vm, "cfg-t-max");
  if (vm.count("cfg-interval")) {
    const std::string iv = vm["cfg-interval"].as<std::string>();
    const size_t comma = iv.find(',');
    try {
      RAE_CHECK(comma != std::string::npos, "");
      size_t u1 = 0, u2 = 0;
      o.guidance.t_min = std::stod(iv.substr(0, comma), &u1);
      o.guidance.t_max = std::stod(iv.substr(comma + 1), &u2);
      RAE_CHECK(u1 == comma && u2 == iv.size() - comma - 1, "");
    } catch (const std::exception&) {
      RAE_THROW("--cfg-interval: '", iv, "' is not T_MIN,T_MAX");
    }
  }
  o.guidance.null_label = static_cast<int32_t>(mc.num_classes);
  if (scale > 1)
    o.guidance.method = o.guide_model_path.empty() ? diffusion::Guidance::Method::Cfg
                                                   : diffusion::Guidance::Method::AutoGuidance;
  else
    RAE_CHECK(o.guide_model_path.empty(),
              "--guide-model needs --cfg-scale > 1 (the release's AutoGuidance uses 1.42)");
  diffusion::validate(o.sampler);
  diffusion::validate(o.guidance, !o.guide_model_path.empty());

  o.seed = vm["seed"].as<uint64_t>();
  if (vm.count("noise-file")) o.noise_file = vm["noise-file"].as<std::string>();
  o.batch = vm["batch"].as<int64_t>();
  o.chunk = vm["chunk"].as<int64_t>();
  o.device = vm["device"].as<std::string>();
  o.precision = vm["precision"].as<std::string>();
  o.png = vm.count("png") > 0;
  RAE_CHECK(!o.png || !o.decoder.empty(), "--png needs --decoder");
  o.keep_latents = vm.count("save-latents") > 0;
  o.grid_rows = vm["grid-rows"].as<int>();
  o.grid_cols = vm["grid-cols"].as<int>();
  RAE_CHECK(o.grid_rows > 0 && o.grid_cols > 0, "--grid-rows and --grid-cols must be > 0");
  o.progress_seconds = vm["progress"].as<double>();
  if (vm.count("report")) o.report_path = vm["report"].as<std::string>();

  // MPI only under mpirun/srun with several ranks: a single process needs none (and starts
  // faster, on machines without an MPI launcher too). On an error a rank exits non-zero and
  // mpirun ends the others.
  if (!distributed::launched_with_several_ranks()) {
    sampling::run_sample_job(o, nullptr);
    return 0;
  }
  auto world = distributed::MpiCommunicator::create_world();
  sampling::run_sample_job(o, world.get());
  distributed::finalize(*world);
  return 0;
}

}  // namespace rae::cli
