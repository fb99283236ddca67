#include "train/stage1_monitor.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "data/image_encode.h"
#include "eval/eval_job.h"
#include "eval/feature_source.h"
#include "models/registry.h"

namespace fs = std::filesystem;

namespace rae::train {

namespace {

// PSNR (dB) of one reconstruction against its input, 8-bit pixels.
double psnr_u8(const uint8_t* a, const uint8_t* b, int64_t n) {
  double se = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    se += d * d;
  }
  const double mse = se / static_cast<double>(n);
  return mse == 0 ? 100.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

// Keeps the lines of a JSONL file with "step" <= step (a resumed run rewrites the rest).
void truncate_jsonl(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).at("step").get<int64_t>() <= step) kept += line + "\n";
    } catch (const std::exception&) {
    }
  }
  in.close();
  write_file_atomic(path, kept);
}

}  // namespace

Stage1Monitor::Stage1Monitor(Trainer& trainer, Stage1Objective& objective,
                             const Stage1MonitorOptions& opts, distributed::Communicator* world)
    : trainer_(trainer), obj_(objective), opts_(opts), world_(world) {
  if (!opts_.run_dir.empty() && trainer_.rank() == 0)
    truncate_jsonl((fs::path(opts_.run_dir) / "eval.jsonl").string(), trainer_.state().step);
}

Stage1Monitor::~Stage1Monitor() = default;

void Stage1Monitor::on_step(const StepStats& s) {
  const Stage1Config& c = obj_.config();
  const int64_t total = opts_.total_steps;
  const bool grid = (c.recon_every > 0 && s.step % c.recon_every == 0) || s.step == total;
  const bool eval =
      !opts_.ref.empty() && ((c.eval_every > 0 && s.step % c.eval_every == 0) || s.step == total);
  if (!grid && !eval) return;
  std::unique_ptr<models::VitDecoder> ema = ema_decoder();
  if (grid) write_grid(s.step, *ema);
  if (eval) evaluate(s.step, *ema);
}

std::unique_ptr<models::VitDecoder> Stage1Monitor::ema_decoder() {
  TrainedModel& tm = trainer_.model("decoder");
  const std::vector<Tensor> groups = tm.params->gather_groups(tm.optimizer->ema());
  std::unique_ptr<nn::Module> m = models::build_model(tm.spec);
  RAE_CHECK(dynamic_cast<models::VitDecoder*>(m.get()), "stage 1: the decoder model is a ",
            m->type());
  std::unique_ptr<models::VitDecoder> dec(static_cast<models::VitDecoder*>(m.release()));
  auto& dst = dec->params().groups();
  for (size_t g = 0; g < groups.size(); ++g) dst[g].data.copy_from(groups[g]);
  // Buffers (the fixed position table) are the constructor's, as the trained module's.
  dec->to(trainer_.device());
  return dec;
}

Tensor Stage1Monitor::grid_images() {
  if (!grid_inputs_.defined()) {
    auto src = eval::open_image_folder(opts_.images, static_cast<int>(obj_.config().image_size));
    const int64_t n = std::min<int64_t>(obj_.config().recon_count, src->size());
    grid_inputs_ = src->images(0, n);
  }
  return grid_inputs_;
}

void Stage1Monitor::write_grid(int64_t step, models::VitDecoder& dec) {
  if (trainer_.rank() != 0 || opts_.images.empty()) return;
  Tensor in = grid_images();
  Tensor rec = obj_.reconstruct(dec, in);
  const int64_t n = in.dim(0), S = in.dim(1);
  std::vector<const uint8_t*> cells;
  for (int64_t i = 0; i < n; ++i) cells.push_back(in.data<uint8_t>() + i * S * S * 3);
  for (int64_t i = 0; i < n; ++i) cells.push_back(rec.data<uint8_t>() + i * S * S * 3);
  data::Image g =
      data::make_grid(cells, static_cast<int>(S), static_cast<int>(S), static_cast<int>(n));
  if (opts_.run_dir.empty()) return;
  const fs::path dir = fs::path(opts_.run_dir) / "reconstructions";
  fs::create_directories(dir);
  char name[64];
  std::snprintf(name, sizeof name, "step-%07lld.png", static_cast<long long>(step));
  data::write_png((dir / name).string(), g);
  data::write_png((fs::path(opts_.run_dir) / "reconstructions.png").string(), g);
  if (tensorboard::Writer* tb = trainer_.events()) {
    std::vector<uint8_t> png = data::encode_png(g.pixels.data(), g.height, g.width);
    tb->add_image("reconstructions", step, std::string(png.begin(), png.end()), g.height, g.width,
                  3);
  }
}

void Stage1Monitor::evaluate(int64_t step, models::VitDecoder& dec) {
  const Stage1Config& c = obj_.config();
  const int64_t S = c.image_size;
  auto src = eval::open_image_folder(opts_.images, static_cast<int>(S));
  const int64_t N = std::min<int64_t>(c.eval_samples, src->size());
  const int W = world_ ? world_->size() : 1, r = world_ ? world_->rank() : 0;
  const int64_t per = (N + W - 1) / W, lo = std::min<int64_t>(N, r * per);
  const int64_t mine = std::min<int64_t>(per, N - lo), px = S * S * 3;
  // This rank's share of the reconstructions, padded to `per` images for the all-gather.
  Tensor local = Tensor::zeros({per, S, S, 3}, DType::U8);
  double psnr_sum = 0;
  for (int64_t i = 0; i < mine; i += c.eval_batch) {
    const int64_t k = std::min<int64_t>(c.eval_batch, mine - i);
    Tensor in = src->images(lo + i, k);
    Tensor rec = obj_.reconstruct(dec, in);
    std::copy_n(rec.data<uint8_t>(), k * px, local.data<uint8_t>() + i * px);
    for (int64_t j = 0; j < k; ++j)
      psnr_sum += psnr_u8(in.data<uint8_t>() + j * px, rec.data<uint8_t>() + j * px, px);
  }
  Tensor all = Tensor::empty({per * W, S, S, 3}, DType::U8);
  if (world_)
    world_->all_gather_async(local, all).wait();
  else
    all.copy_from(local);
  const double psnr = distributed::sum_f64(world_, psnr_sum) / static_cast<double>(N);
  eval::EvalJobOptions eo;
  eo.ref = opts_.ref;
  eo.device = opts_.device;
  eo.batch = c.eval_batch;
  const std::string inception = opts_.inception;
  const Device dev = eval::eval_device(opts_.device, world_);
  eval::ExtractorFactory factory = [inception, dev]() {
    RAE_CHECK(!inception.empty(), "rFID needs --inception WEIGHTS.safetensors (or synthetic)");
    return eval::make_inception_extractor(inception, dev);
  };
  nlohmann::json m = eval::evaluate_samples(
      *eval::tensor_source(all.narrow(0, 0, N), "reconstructions"), eo, factory, world_);
  if (trainer_.rank() != 0) return;
  const double rfid = m.at("fid").get<double>();
  log::info("step ", step, ": rFID ", rfid, ", PSNR ", psnr, " dB over ", N,
            " reconstructions (EMA decoder)");
  if (opts_.run_dir.empty()) return;
  nlohmann::json line = {{"step", step},
                         {"rfid", rfid},
                         {"psnr", psnr},
                         {"samples", N},
                         {"inception_score", m.value("inception_score", 0.0)}};
  std::ofstream f((fs::path(opts_.run_dir) / "eval.jsonl").string(), std::ios::app);
  f << line.dump() << "\n";
  if (tensorboard::Writer* tb = trainer_.events()) {
    tb->add_scalar("eval/rfid", step, rfid);
    tb->add_scalar("eval/psnr", step, psnr);
  }
}

}  // namespace rae::train
