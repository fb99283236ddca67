// rae reconstruct --encoder DIR --decoder F --stats F --data DIR --out DIR [--num N]
//   [--ref REF.npz --inception WEIGHTS|synthetic]
// Stage-1 reconstructions of real images as the release's RAE.forward: ADM center crop to the
// decoder's image size, bicubic resize to the encoder input, encoder, (z - mean) / sqrt(var +
// eps), decoder, de-normalisation, uint8. Writes DIR/pairs/NNNNNN.png (original | reconstruction),
// DIR/grid.png (pairs side by side) and DIR/metrics.json (PSNR and SSIM per image and mean; with
// --ref also rFID and the other metrics of `rae eval` on the reconstructions, computed by
// eval::evaluate_samples from the images in memory).
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "data/image_encode.h"
#include "data/image_folder.h"
#include "data/image_preprocess.h"
#include "eval/eval_job.h"
#include "models/vit_encoder.h"
#include "ops/precision.h"
#include "sampling/decode.h"
#include "sampling/image_metrics.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rae::cli {

namespace {

// --split, or "val" when the dataset has one, else "train".
std::string pick_split(const std::string& root, const std::string& split) {
  if (!split.empty()) return split;
  return fs::is_directory(fs::path(root) / "val") ? "val" : "train";
}

}  // namespace

int cmd_reconstruct(int argc, char** argv) {
  po::options_description d("rae reconstruct: encode real images and decode them back (stage 1)");
  // clang-format off
  d.add_options()
      ("help,h", "show this help")
      ("encoder", po::value<std::string>(), "HF encoder directory or preset (tiny-random)")
      ("decoder", po::value<std::string>(),
       "decoder safetensors, stage-1 run or checkpoint dir, or random:PRESET[:SEED]")
      ("no-ema", "a run/checkpoint dir's trained decoder weights instead of its EMA")
      ("stats", po::value<std::string>(), "latent statistics (mean/var); 'none' for none")
      ("data", po::value<std::string>(), "ImageFolder root (DIR/<split>/<class>/*)")
      ("split", po::value<std::string>()->default_value(""), "split folder (default: val, else train)")
      ("out", po::value<std::string>(), "output directory")
      ("num", po::value<int64_t>()->default_value(16), "images (the first N of the split)")
      ("spread", "the N images evenly spread over the split (every class) instead of the first N")
      ("encoder-input", po::value<int64_t>()->default_value(0), "encoder input size (0: default)")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or cuda:N")
      ("batch", po::value<int64_t>()->default_value(8), "images per forward")
      ("grid-cols", po::value<int>()->default_value(4), "pairs per row of grid.png")
      ("ref", po::value<std::string>(),
       "reference .npz (as `rae eval --ref`): adds rFID, sFID, IS, precision and recall of the "
       "reconstructions to metrics.json")
      ("inception", po::value<std::string>(),
       "InceptionV3 weights for --ref (safetensors; 'synthetic': pseudo-random, tests only)")
      ("eval-batch", po::value<int64_t>()->default_value(200), "images per Inception forward");
  // clang-format on
  po::variables_map vm;
  if (!parse_options(d, argc, argv, vm)) return 0;
  require(vm, {"encoder", "decoder", "stats", "data", "out"});
  const int64_t num = vm["num"].as<int64_t>(), batch = vm["batch"].as<int64_t>();
  RAE_CHECK(num > 0 && batch > 0, "--num and --batch must be > 0");
  const Device device = parse_device(vm["device"].as<std::string>());
  RAE_CHECK(!vm.count("inception") || vm.count("ref"), "--inception is used with --ref only");
  RAE_CHECK(!vm.count("ref") || vm.count("inception"),
            "--ref needs --inception WEIGHTS.safetensors (tools/convert_inception_weights.py)");
  RAE_CHECK(vm["eval-batch"].as<int64_t>() > 0, "--eval-batch must be > 0");

  models::EncoderLoadOptions eo;
  eo.input_size = vm["encoder-input"].as<int64_t>();
  eo.device = device;
  models::VitEncoder enc = models::VitEncoder::load(vm["encoder"].as<std::string>(), eo);
  const auto& ec = enc.config();
  const sampling::ModelSource src =
      sampling::resolve_model_source(vm["decoder"].as<std::string>(), "--decoder",
                                     !vm.count("no-ema"), sampling::is_decoder_model);
  auto decoder = sampling::load_decoder(src, device, ec.hidden);
  const auto& dc = decoder->decoder_config();
  RAE_CHECK(dc.tokens() == ec.tokens() && dc.latent_channels == ec.hidden, "decoder ",
            vm["decoder"].as<std::string>(), " decodes ", dc.tokens(), " x ", dc.latent_channels,
            " latents but encoder ", enc.id(), " gives ", ec.tokens(), " x ", ec.hidden);
  diffusion::LatentStats stats;
  if (vm["stats"].as<std::string>() != "none")
    stats = sampling::load_latent_stats(vm["stats"].as<std::string>(), ec.tokens(), ec.hidden);
  sampling::DecodePipeline pipe(*decoder, stats, device);
  pipe.set_pixel_norm(ec.mean, ec.std);  // the encoder's own normalisation

  const std::string root = vm["data"].as<std::string>();
  data::ImageFolderList list =
      data::list_image_folder(root, pick_split(root, vm["split"].as<std::string>()));
  const int64_t N = std::min<int64_t>(num, static_cast<int64_t>(list.entries.size()));
  RAE_CHECK(N > 0, root, ": no images found");
  if (vm.count("spread")) {  // entry i * size / N: the classes in order, each about as often
    std::vector<data::ImageEntry> picked;
    for (int64_t i = 0; i < N; ++i)
      picked.push_back(list.entries[i * static_cast<int64_t>(list.entries.size()) / N]);
    list.entries = std::move(picked);
  }
  const int S = static_cast<int>(dc.image_size()), in = static_cast<int>(ec.input_size);
  const std::string out = vm["out"].as<std::string>();
  fs::create_directories(out + "/pairs");

  std::vector<uint8_t> originals, recons;
  for (int64_t b0 = 0; b0 < N; b0 += batch) {
    const int64_t nb = std::min(batch, N - b0);
    Tensor px = Tensor::empty({nb, 3, in, in});
    for (int64_t i = 0; i < nb; ++i) {
      const auto& e = list.entries[b0 + i];
      data::Image crop = data::center_crop_arr(data::decode_image_file(e.path), S);
      originals.insert(originals.end(), crop.pixels.begin(), crop.pixels.end());
      std::vector<float> x = data::to_encoder_input(crop, in, ec.mean, ec.std);
      std::copy(x.begin(), x.end(), px.data<float>() + i * 3 * in * in);
    }
    Tensor z = pipe.normalize(enc.forward(px));
    std::vector<uint8_t> u8 = pipe.decode_u8(z);
    recons.insert(recons.end(), u8.begin(), u8.end());
  }

  // Pairs, the grid ([original | reconstruction] cells) and the metrics.
  const size_t img = static_cast<size_t>(S) * S * 3;
  std::vector<const uint8_t*> cells;
  nlohmann::json per_image = nlohmann::json::array();
  double psnr_sum = 0, ssim_sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const uint8_t* o = originals.data() + i * img;
    const uint8_t* r = recons.data() + i * img;
    cells.push_back(o), cells.push_back(r);
    char name[32];
    std::snprintf(name, sizeof name, "/pairs/%06lld.png", static_cast<long long>(i));
    data::write_png(out + name, data::make_grid({o, r}, S, S, 2));
    const double p = sampling::psnr(o, r, S, S), s = sampling::ssim(o, r, S, S);
    psnr_sum += p, ssim_sum += s;
    per_image.push_back({{"index", i},
                         {"path", list.entries[i].relpath},
                         {"label", list.entries[i].label},
                         {"psnr", p},
                         {"ssim", s}});
  }
  data::write_png(out + "/grid.png", data::make_grid(cells, S, S, 2 * vm["grid-cols"].as<int>()));
  nlohmann::json metrics = {
      {"count", N},
      {"mean", {{"psnr", psnr_sum / N}, {"ssim", ssim_sum / N}}},
      {"images", per_image},
      {"encoder", enc.id()},
      {"decoder", vm["decoder"].as<std::string>()},
      {"image_size", S},
      {"metrics",
       "PSNR 20 log10(1/sqrt(mse)) and torchmetrics SSIM (Gaussian 11, sigma 1.5) on "
       "uint8 / 255, as the release's src/eval/ref_iqa.py"}};
  if (vm.count("ref")) {
    // rFID: the reconstructions (N, S, S, 3) uint8 against the reference, as `rae eval` scores
    // samples (one process here).
    Tensor images = Tensor::empty({N, S, S, 3}, DType::U8);
    std::copy(recons.begin(), recons.end(), images.data<uint8_t>());
    eval::EvalJobOptions eo;
    eo.ref = vm["ref"].as<std::string>();
    eo.device = vm["device"].as<std::string>();
    eo.batch = vm["eval-batch"].as<int64_t>();
    const std::string weights = vm["inception"].as<std::string>();
    const Device dev = device;
    eval::ExtractorFactory factory = [weights, dev] {
      return eval::make_inception_extractor(weights, dev);
    };
    nlohmann::json m = eval::evaluate_samples(
        *eval::tensor_source(images, out + " (reconstructions)"), eo, factory, nullptr);
    metrics["rfid"] = m.at("fid");
    metrics["eval"] = m;
    log::info(
        "reconstruct: rFID ", m.at("fid").get<double>(), " against ", eo.ref,
        weights == eval::kSyntheticWeights ? " (synthetic Inception weights: meaningless)" : "");
  }
  write_file_atomic(out + "/metrics.json", metrics.dump(2) + "\n");
  log::info("reconstruct: ", N, " images, mean PSNR ", psnr_sum / N, " dB, mean SSIM ",
            ssim_sum / N, "; wrote ", out, "/grid.png and metrics.json");
  return 0;
}

}  // namespace rae::cli
