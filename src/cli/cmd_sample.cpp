// mpirun -np N rae sample --model F|RUN_DIR --decoder F --num-per-class K [--classes LIST]
//   --out DIR [--stats F|none] [--guide-model F] [--sampler euler|heun|sde] [--steps 50]
//   [--cfg-scale S] [--cfg-interval T0,T1] [--batch B] [--device cuda|cpu] [--png] ...
// The distributed, resumable sampling job (sampling/sample_job.h): samples split across ranks by
// global index, decoded to images, written as PNGs (optional), grid.png and the ADM samples.npz.
// Models come from files, run directories (consolidated in memory) or random presets
// (sampling/model_source.h).
#include <boost/program_options.hpp>
#include <cmath>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "diffusion/flow.h"
#include "distributed/mpi_communicator.h"
#include "sampling/decode.h"
#include "sampling/sample_job.h"
#include "sampling/velocity.h"

namespace po = boost::program_options;

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

double finite_option(const po::variables_map& vm, const char* name) {
  const double v = vm[name].as<double>();
  RAE_CHECK(std::isfinite(v), "--", name, " must be a finite number, got ", v);
  return v;
}

}  // namespace

int cmd_sample(int argc, char** argv) {
  po::options_description d(
      "rae sample: class-conditional samples of a stage-2 model (DiT^DH, DiT), decoded to "
      "images (run under mpirun -np N, or alone; a rerun resumes)");
  // clang-format off
  d.add_options()
      ("help,h", "show this help")
      ("model", po::value<std::string>(),
       "stage-2 model: safetensors (export or converted), run dir (its newest valid checkpoint, "
       "consolidated in memory), checkpoint dir, or random:PRESET[:SEED]")
      ("no-ema", "a run/checkpoint dir's trained weights instead of its EMA weights")
      ("guide-model", po::value<std::string>(),
       "AutoGuidance guide model (e.g. DiT^DH-S), any form --model takes")
      ("decoder", po::value<std::string>(),
       "stage-1 decoder: safetensors, stage-1 run or checkpoint dir, or random:PRESET[:SEED]; "
       "without it only latents are kept")
      ("stats", po::value<std::string>(),
       "latent statistics overriding those stored in the model file (a stats file, e.g. the "
       "cache's stats.safetensors or a converted stat.pt); 'none': decode the samples as raw "
       "latents")
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
  const bool ema = !vm.count("no-ema");
  o.model = sampling::resolve_model_source(vm["model"].as<std::string>(), "--model", ema,
                                           sampling::is_stage2_model);
  if (vm.count("guide-model"))
    o.guide_model = sampling::resolve_model_source(vm["guide-model"].as<std::string>(),
                                                   "--guide-model", ema, sampling::is_stage2_model);
  if (vm.count("decoder"))
    o.decoder = sampling::resolve_model_source(vm["decoder"].as<std::string>(), "--decoder", ema,
                                               sampling::is_decoder_model);
  if (vm.count("stats")) {
    o.stats_path = vm["stats"].as<std::string>();
    RAE_CHECK(!o.stats_path.empty(), "--stats is empty (give a file or 'none')");
  }
  o.out_dir = vm["out"].as<std::string>();
  if (vm.count("pixel-norm")) {
    o.pixel_norm = vm["pixel-norm"].as<std::string>();
    std::array<float, 3> m, sd;
    sampling::pixel_norm_from_name(o.pixel_norm, &m, &sd);  // refuses unknown names now
  }

  // Labels: classes x num-per-class (class-major), or explicit; their range is checked against
  // the model by the job.
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
    if (vm.count("classes"))
      o.classes = parse_int_list("classes", vm["classes"].as<std::string>(), true);
  }

  // Sampler and guidance.
  o.sampler.kind = diffusion::sampler_kind_from_name(vm["sampler"].as<std::string>());
  o.sampler.num_steps = vm["steps"].as<int>();
  o.shift_base = finite_option(vm, "shift-base");
  RAE_CHECK(o.shift_base > 0, "--shift-base must be > 0, got ", o.shift_base);
  o.shift_dim = vm["shift-dim"].as<int64_t>();
  RAE_CHECK(o.shift_dim >= 0, "--shift-dim must be >= 0, got ", o.shift_dim);
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
  if (scale > 1)
    o.guidance.method = o.guide_model.arg.empty() ? diffusion::Guidance::Method::Cfg
                                                  : diffusion::Guidance::Method::AutoGuidance;
  else
    RAE_CHECK(o.guide_model.arg.empty(),
              "--guide-model needs --cfg-scale > 1 (the release's AutoGuidance uses 1.42)");
  diffusion::validate(o.guidance, !o.guide_model.arg.empty());
  {
    diffusion::SamplerOptions check = o.sampler;  // the shift comes with the model
    check.shift = 1.0;
    diffusion::validate(check);
  }

  o.seed = vm["seed"].as<uint64_t>();
  if (vm.count("noise-file")) o.noise_file = vm["noise-file"].as<std::string>();
  o.batch = vm["batch"].as<int64_t>();
  o.chunk = vm["chunk"].as<int64_t>();
  o.device = vm["device"].as<std::string>();
  o.precision = vm["precision"].as<std::string>();
  o.png = vm.count("png") > 0;
  RAE_CHECK(!o.png || !o.decoder.arg.empty(), "--png needs --decoder");
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
