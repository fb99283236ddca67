// rae sample --checkpoint FILE --out FILE --labels 1,2,3 [--steps 50] [--cfg-scale S]
// Euler ODE sampler of the release (t from 1 to 1e-3 on a shifted grid) with optional CFG;
// writes latents (B, T, C) and labels to safetensors. Noise: RNG purpose Sample keyed by
// (seed, sample index).
#include <boost/program_options.hpp>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "diffusion/flow.h"
#include "diffusion/sampling_model.h"
#include "io/safetensors.h"

namespace po = boost::program_options;

namespace rae::cli {

int cmd_sample(int argc, char** argv) {
  po::options_description d("rae sample options");
  d.add_options()("help,h", "show this help")("checkpoint", po::value<std::string>(),
                                              "model safetensors (usually ema.safetensors)")(
      "out", po::value<std::string>(), "output safetensors (latents, labels)")(
      "labels", po::value<std::string>(), "comma-separated class labels, one sample each")(
      "steps", po::value<int>()->default_value(50), "Euler steps")(
      "cfg-scale", po::value<double>()->default_value(1.0), "classifier-free guidance scale")(
      "cfg-t-min", po::value<double>()->default_value(0.0), "guidance interval start")(
      "cfg-t-max", po::value<double>()->default_value(1.0), "guidance interval end")(
      "shift-base", po::value<double>()->default_value(4096), "time shift base")(
      "seed", po::value<uint64_t>()->default_value(0), "noise seed");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(d).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
  if (vm.count("help")) {
    std::cout << d << "\n";
    return 0;
  }
  for (const char* k : {"checkpoint", "out", "labels"}) RAE_CHECK(vm.count(k), "missing --", k);
  diffusion::SamplingModel loaded =
      diffusion::load_sampling_model(vm["checkpoint"].as<std::string>());
  models::Denoiser* model = loaded.denoiser;
  std::vector<int32_t> labels;
  {
    std::stringstream ss(vm["labels"].as<std::string>());
    std::string item;
    while (std::getline(ss, item, ',')) {
      int v = -1;
      try {
        v = std::stoi(item);
      } catch (const std::exception&) {
        RAE_THROW("--labels: '", item, "' is not an integer");
      }
      RAE_CHECK(v >= 0 && v <= model->num_classes(), "--labels: ", v, " out of range [0, ",
                model->num_classes(), "]");
      labels.push_back(v);
    }
  }
  RAE_CHECK(!labels.empty(), "--labels is empty");
  const int64_t B = static_cast<int64_t>(labels.size()), T = model->tokens(), C = model->channels();
  Tensor x = Tensor::empty({B, T, C}), y = Tensor::empty({B}, DType::I32);
  const uint64_t seed = vm["seed"].as<uint64_t>();
  for (int64_t b = 0; b < B; ++b) {
    y.data<int32_t>()[b] = labels[b];
    rng::Key k{seed, rng::Purpose::Sample, 0, static_cast<uint64_t>(b)};
    for (int64_t i = 0; i < T * C; ++i) x.data<float>()[b * T * C + i] = rng::normal_at(k, i);
  }
  diffusion::SamplerConfig sc;
  sc.num_steps = vm["steps"].as<int>();
  sc.shift = diffusion::time_shift(T * C, vm["shift-base"].as<double>());
  sc.cfg_scale = vm["cfg-scale"].as<double>();
  sc.cfg_t_min = vm["cfg-t-min"].as<double>();
  sc.cfg_t_max = vm["cfg-t-max"].as<double>();
  nn::Arena arena;
  auto velocity = [&](const Tensor& out, const Tensor& xin, const Tensor& t, const Tensor& yy) {
    arena.reset();
    model->forward(arena, out, xin, t, yy);
  };
  diffusion::euler_sample(sc, velocity, x, y, static_cast<int32_t>(model->num_classes()));
  // The model samples normalised latents when its run normalised them: back to encoder latents.
  if (loaded.stats.defined()) diffusion::denormalize_latents(x, loaded.stats);
  safetensors::save(vm["out"].as<std::string>(), {{"latents", x}, {"labels", y}});
  log::info("wrote ", vm["out"].as<std::string>(), ": ", B, " samples ", x.shape().str());
  return 0;
}

}  // namespace rae::cli
