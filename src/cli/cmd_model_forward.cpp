// rae model-forward --checkpoint FILE --inputs FILE --out FILE
// Runs a DiT^DH state dict on x (x_t: (B, T, C) tokens or (B, C, H, W) as the release takes it),
// t (B) and y (B) from a safetensors file; writes "out" in the layout of x.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_loading.h"
#include "core/error.h"
#include "core/log.h"
#include "diffusion/sampling_model.h"
#include "io/safetensors.h"

namespace po = boost::program_options;

namespace rae::cli {

int cmd_model_forward(int argc, char** argv) {
  po::options_description d("rae model-forward options");
  d.add_options()("help,h", "show this help")("checkpoint", po::value<std::string>(),
                                              "model safetensors (model or ema of a checkpoint)")(
      "inputs", po::value<std::string>(), "safetensors with x, t, y")(
      "out", po::value<std::string>(), "output safetensors (tensor 'out')");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(d).run(), vm);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
  if (vm.count("help")) {
    std::cout << d << "\n";
    return 0;
  }
  for (const char* k : {"checkpoint", "inputs", "out"}) RAE_CHECK(vm.count(k), "missing --", k);
  diffusion::SamplingModel loaded =
      diffusion::load_sampling_model(vm["checkpoint"].as<std::string>());
  models::Denoiser* model = loaded.denoiser;
  safetensors::File in = safetensors::load(vm["inputs"].as<std::string>());
  Tensor xin = in.get("x");
  Tensor x = to_tokens(xin);
  RAE_CHECK(x.dim(1) == model->tokens() && x.dim(2) == model->channels(), in.path, ": x is ",
            xin.shape().str(), ", the model takes ", model->tokens(), " tokens of ",
            model->channels());
  const int64_t B = x.dim(0);
  Tensor t = in.get("t").cast(DType::F32), y = in.get("y").cast(DType::I32);
  RAE_CHECK(t.numel() == B && y.numel() == B, in.path, ": t and y need ", B, " entries");
  for (int64_t b = 0; b < B; ++b)
    RAE_CHECK(y.data<int32_t>()[b] >= 0 && y.data<int32_t>()[b] <= model->num_classes(), in.path,
              ": label ", y.data<int32_t>()[b], " out of range [0, ", model->num_classes(), "]");
  nn::Arena arena;
  Tensor out = Tensor::empty(x.shape());
  model->forward(arena, out, x, t.view({B}), y.view({B}));
  Tensor result = xin.ndim() == 4 ? to_image(out, model->grid()) : out;
  safetensors::save(vm["out"].as<std::string>(), {{"out", result}});
  log::info("wrote ", vm["out"].as<std::string>(), ": out ", result.shape().str());
  return 0;
}

}  // namespace rae::cli
