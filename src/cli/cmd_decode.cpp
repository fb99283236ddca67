// rae decode --decoder F|RUN_DIR --latents F --out DIR [--stats F|none] [--device cpu|cuda]
// Decodes normalised latents (a safetensors or .npz file with "latents" (N, T, C) or the
// release's (N, C, H, W), e.g. latents.npz of `rae sample`, which carries the statistics that
// de-normalise them) to PNG images, DIR/NNNNNN.png, and DIR/grid.png, with the release's
// de-normalisation and uint8 conversion. --stats overrides the file's statistics ('none': the
// latents are raw encoder latents); a latents file without statistics needs --stats.
// `rae decode --decoder random:ViT-XL --benchmark 64 --device cuda` times the forward instead.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "data/image_encode.h"
#include "ops/precision.h"
#include "sampling/decode.h"
#include "sampling/noise.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rae::cli {

namespace {

// Decoder forwards on `batch` random latents: one warm-up, then `iters` timed ones, each ended
// by a one-image copy to the host (which waits for the device). Prints one JSON line.
int benchmark(sampling::DecodePipeline& pipe, int64_t batch, int iters, Device device,
              const std::string& precision) {
  RAE_CHECK(batch > 0 && iters > 0, "--benchmark and --iters must be > 0");
  const auto& c = pipe.config();
  Tensor z = Tensor::empty({batch, c.tokens(), c.latent_channels}, DType::F32, device);
  std::vector<int64_t> ids(batch);
  for (int64_t i = 0; i < batch; ++i) ids[i] = i;
  sampling::fill_keyed_noise(z, 0, 0, ids);
  auto run = [&] { pipe.decode_device(z).narrow(0, 0, 1).to(Device::cpu()); };
  run();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) run();
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
  nlohmann::json r = {{"name", "rae_decoder_" + c.name + "_" + precision},
                      {"ok", true},
                      {"decoder", c.name},
                      {"batch", batch},
                      {"device", device.str()},
                      {"precision", precision},
                      {"ms_per_forward", s * 1e3},
                      {"images_per_s", batch / s}};
  std::printf("%s\n", r.dump().c_str());
  return 0;
}

}  // namespace

int cmd_decode(int argc, char** argv) {
  po::options_description d("rae decode: latents to PNG images with a stage-1 decoder");
  // clang-format off
  d.add_options()
      ("help,h", "show this help")
      ("decoder", po::value<std::string>(),
       "decoder safetensors, stage-1 run or checkpoint dir, or random:PRESET[:SEED]")
      ("no-ema", "a run/checkpoint dir's trained decoder weights instead of its EMA")
      ("stats", po::value<std::string>(),
       "latent statistics file overriding those stored with the latents; 'none': raw latents")
      ("latents", po::value<std::string>(), "safetensors or .npz with 'latents'")
      ("out", po::value<std::string>(), "output directory")
      ("pixel-norm", po::value<std::string>(), "imagenet or siglip (default: the decoder's)")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or cuda:N")
      ("precision", po::value<std::string>()->default_value("fp32"), "fp32, tf32 or bf16 (CUDA)")
      ("batch", po::value<int64_t>()->default_value(16), "latents per decoder forward")
      ("grid-cols", po::value<int>()->default_value(8), "images per row of grid.png")
      ("benchmark", po::value<int64_t>(),
       "time the decoder forward on B random latents instead (prints JSON; no --latents/--out)")
      ("iters", po::value<int>()->default_value(5), "timed forwards of --benchmark");
  // clang-format on
  po::variables_map vm;
  if (!parse_options(d, argc, argv, vm)) return 0;
  const bool bench = vm.count("benchmark") > 0;
  require(vm, {"decoder"});
  if (!bench) require(vm, {"latents", "out"});
  const int64_t batch = vm["batch"].as<int64_t>();
  RAE_CHECK(batch > 0, "--batch must be > 0, got ", batch);
  const Device device = parse_device(vm["device"].as<std::string>());
  const std::string precision = vm["precision"].as<std::string>();
  ops::set_precision(ops::precision_from_name(precision));
  RAE_CHECK(precision == "fp32" || device.is_cuda(), "--precision ", precision,
            " needs --device cuda");
  const sampling::ModelSource src =
      sampling::resolve_model_source(vm["decoder"].as<std::string>(), "--decoder",
                                     !vm.count("no-ema"), sampling::is_decoder_model);
  auto decoder = sampling::load_decoder(src, device);
  const auto& c = decoder->decoder_config();
  sampling::LatentsFile lf;
  if (!bench)
    lf =
        sampling::read_latents_file(vm["latents"].as<std::string>(), c.tokens(), c.latent_channels);
  diffusion::LatentStats stats = lf.stats;
  if (vm.count("stats")) {
    const std::string st = vm["stats"].as<std::string>();
    stats = st == "none" ? diffusion::LatentStats()
                         : sampling::load_latent_stats(st, c.tokens(), c.latent_channels);
  } else if (!bench) {
    RAE_CHECK(stats.defined(), vm["latents"].as<std::string>(),
              ": carries no latent statistics; give --stats F (the cache's stats.safetensors or "
              "the model's export) or --stats none for raw encoder latents");
  }
  sampling::DecodePipeline pipe(*decoder, stats, device,
                                precision == "bf16" ? DType::BF16 : DType::F32);
  if (vm.count("pixel-norm")) {
    std::array<float, 3> mean, std;
    sampling::pixel_norm_from_name(vm["pixel-norm"].as<std::string>(), &mean, &std);
    pipe.set_pixel_norm(mean, std);
  }
  if (bench)
    return benchmark(pipe, vm["benchmark"].as<int64_t>(), vm["iters"].as<int>(), device, precision);
  const Tensor& z = lf.latents;
  const std::string out = vm["out"].as<std::string>();
  fs::create_directories(out);
  const int64_t N = z.dim(0), S = c.image_size();
  std::vector<uint8_t> all;
  for (int64_t b0 = 0; b0 < N; b0 += batch) {
    const int64_t nb = std::min(batch, N - b0);
    std::vector<uint8_t> u8 = pipe.decode_u8(z.narrow(0, b0, nb));
    for (int64_t i = 0; i < nb; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "/%06lld.png", static_cast<long long>(b0 + i));
      data::write_png(out + name, u8.data() + i * S * S * 3, static_cast<int>(S),
                      static_cast<int>(S));
    }
    all.insert(all.end(), u8.begin(), u8.end());
  }
  data::write_png(out + "/grid.png",
                  data::make_grid(all.data(), static_cast<int>(N), static_cast<int>(S),
                                  static_cast<int>(S), vm["grid-cols"].as<int>()));
  log::info("decode: wrote ", N, " images of ", S, "x", S, " and grid.png to ", out);
  return 0;
}

}  // namespace rae::cli
