#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "ops/elementwise.h"
#include "ops/optim.h"
#include "ops/precision.h"
#include "train/run_events.h"
#include "train/stop_request.h"
#ifdef RAE_WITH_CUDA
#include "tensor/cuda_memory.h"
#endif

namespace fs = std::filesystem;

namespace rae::train {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// mean((pred - target)^2), summed in a fixed order.
double mse_deterministic(const Tensor& pred, const Tensor& target) {
  const float* p = pred.data<float>();
  const float* q = target.data<float>();
  const int64_t n = pred.numel();
  double total = 0;
  for (int64_t i = 0; i < n; i += 4096) {
    double part = 0;
    for (int64_t j = i; j < std::min(n, i + 4096); ++j) {
      double d = static_cast<double>(p[j]) - q[j];
      part += d * d;
    }
    total += part;
  }
  return total / static_cast<double>(n);
}

// Keeps the lines of metrics.jsonl with step <= `step` (a resumed run rewrites the rest).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (nlohmann::json::parse(line).at("step").get<int64_t>() > step) continue;
    } catch (const std::exception&) {
      continue;
    }
    kept += line + "\n";
  }
  in.close();
  write_file_atomic(path, kept);
}

// Peak bytes held by the CUDA caching allocator since the process started (0 on the CPU).
double peak_device_gib(const Device& dev) {
#ifdef RAE_WITH_CUDA
  if (dev.is_cuda()) return static_cast<double>(cuda_memory::stats().peak_in_use) / (1 << 30);
#endif
  (void)dev;
  return 0;
}

}  // namespace

Trainer::Trainer(const TrainConfig& cfg, BatchStream& data, const std::string& run_dir,
                 GradientSync* sync, ParameterSource* params)
    : cfg_(cfg),
      data_(data),
      run_dir_(run_dir),
      sync_(sync ? sync : &default_sync_),
      param_source_(params ? params : &default_params_) {
  models::DiTConfig mc = models::dit_preset(cfg.preset);
  mc.in_channels = data.channels();
  mc.grid = data.grid();
  mc.num_classes = data.num_classes();
  mc.class_dropout = cfg.class_dropout;
  model_ = std::make_unique<models::DiTDH>(mc);
  model_->init(static_cast<uint64_t>(cfg.seed));
  device_ = parse_device(cfg.device);
  if (device_.is_cuda()) {
    RAE_CHECK(cuda_available(), "train.device = ", cfg.device,
              ": no CUDA device (or a build without CUDA)");
    model_->to(device_);
  }
  // Precision (config.h): on CUDA the GEMM precision of F32 tensors; bf16 also keeps the
  // activations in BF16 (parameters, gradients, optimizer state and the loss stay F32).
  DType act_dtype = DType::F32;
  if (device_.is_cuda()) {
    ops::set_precision(ops::precision_from_name(cfg.precision));
    if (cfg.precision == "bf16") act_dtype = DType::BF16;
  } else {
    RAE_CHECK(cfg.precision != "bf16", "train.precision = bf16 needs train.device = cuda");
  }
  arena_ = nn::Arena(device_, size_t(64) << 20, act_dtype);
  model_->set_block_hooks(sync_->block_hooks(model_->params()));
  if (!sync_->owns_optimizer()) {  // else the sharded optimizer holds (a shard of) the state
    adam_ =
        std::make_unique<AdamW>(model_->params(), cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
    ema_ = std::make_unique<Ema>(model_->params());
  }

  diffusion::parse_time_dist(cfg.time_dist, flow_);
  const int64_t dim = cfg.shift_dim > 0 ? cfg.shift_dim : mc.tokens() * mc.in_channels;
  flow_.shift = diffusion::time_shift(dim, cfg.shift_base);
  flow_.class_dropout = cfg.class_dropout;
  flow_.num_classes = mc.num_classes;
  flow_.seed = static_cast<uint64_t>(cfg.seed);
  const int64_t world = sync_->world_size();
  RAE_CHECK(cfg.global_batch_size % (world * cfg.grad_accum_steps) == 0, "train.global_batch_size ",
            cfg.global_batch_size, " is not divisible by ranks (", world,
            ") x train.grad_accum_steps (", cfg.grad_accum_steps, ")");
  data_.open(StreamOptions{cfg.global_batch_size, sync_->rank(), static_cast<int>(world),
                           static_cast<uint64_t>(cfg.seed)});
  schedule_ = LrSchedule::from_config(cfg, data_.steps_per_epoch());
  state_.seed = static_cast<uint64_t>(cfg.seed);
  state_.preset = cfg.preset;
  state_.model_config = mc.to_json();
  state_.data = data_.position();
  if (sync_->rank() == 0)
    log::info("model ", mc.name, ": ", models::format_count(model_->params().num_params()),
              " parameters (body ", mc.body_width, "x", mc.body_depth, ", head ", mc.head_width,
              "x", mc.head_depth, "), tokens ", mc.tokens(), "x", mc.in_channels, ", time shift ",
              flow_.shift, ", device ", device_.str(), ", precision ",
              device_.is_cuda() ? cfg.precision : std::string("fp32"));
}

int64_t Trainer::resume() {
  if (run_dir_.empty()) return 0;
  if (sync_->owns_checkpoints()) {
    auto st = sync_->load_latest_checkpoint(run_dir_, model_->params());
    if (!st) return 0;
    RAE_CHECK(st->preset == cfg_.preset, "checkpoint is for model '", st->preset,
              "', the config says '", cfg_.preset, "'");
    state_ = *st;
    data_.seek(st->data);
    if (sync_->rank() == 0) log::info("resumed from step ", st->step);
    return st->step;
  }
  auto ckpt = latest_valid_checkpoint(run_dir_);
  if (!ckpt) return 0;
  RunState st;
  load_checkpoint(*ckpt, model_->params(), ema_.get(), adam_.get(), &st);
  RAE_CHECK(st.preset == cfg_.preset, "checkpoint ", *ckpt, " is for model '", st.preset,
            "', the config says '", cfg_.preset, "'");
  st.model_config = state_.model_config;
  state_ = st;
  try {
    data_.seek(st.data);
  } catch (const std::exception& e) {
    RAE_THROW("checkpoint ", *ckpt, ": its data position ", st.data.dump(),
              " does not fit this data source (", e.what(), ")");
  }
  log::info("resumed from ", *ckpt, " (step ", st.step, ")");
  return st.step;
}

StepStats Trainer::step() {
  const auto t_start = Clock::now();
  const int64_t GB = cfg_.global_batch_size, K = cfg_.grad_accum_steps;
  const int64_t world = sync_->world_size();
  const int64_t per_rank = GB / world, mb = per_rank / K;
  const int64_t T = model_->config().tokens(), C = model_->config().in_channels;
  const uint64_t step_key = static_cast<uint64_t>(state_.step);
  nn::ParamStore& ps = model_->params();

  ps.zero_grad();
  param_source_->before_forward(ps);
  double loss_local = 0;
  DataBatch batch = data_.next();
  RAE_CHECK(
      batch.latents.dim(0) == per_rank && batch.latents.dim(1) == T && batch.latents.dim(2) == C,
      "data batch ", batch.latents.str(), " does not match (", per_rank, ", ", T, ", ", C, ")");
  Tensor xt = Tensor::empty({mb, T, C}), target = Tensor::empty({mb, T, C});
  Tensor t = Tensor::empty({mb}), y = Tensor::empty({mb}, DType::I32);
  const Device dev = device_;
  Tensor pred = Tensor::empty({mb, T, C}, DType::F32, dev);
  Tensor dpred = Tensor::empty({mb, T, C}, DType::F32, dev);
  for (int64_t k = 0; k < K; ++k) {
    Tensor x = batch.latents.narrow(0, k * mb, mb), labels = batch.labels.narrow(0, k * mb, mb);
    const int64_t* idp = batch.ids.data<int64_t>() + k * mb;
    std::vector<int64_t> ids(idp, idp + mb);
    diffusion::make_training_batch(flow_, step_key, x, labels, ids, xt, target, t, y);
    // The batch is drawn on the host (keyed RNG); the model runs where its parameters are.
    Tensor xt_d = xt.to(dev), target_d = target.to(dev), t_d = t.to(dev), y_d = y.to(dev);
    arena_.reset();
    model_->forward(arena_, pred, xt_d, t_d, y_d);
    // This micro-batch's share of the global mean: (mb / GB) * its own mean.
    const double share = static_cast<double>(mb) / static_cast<double>(GB);
    // On the CPU in a fixed order (bit-exact resume); on a GPU by the op's own reduction.
    loss_local +=
        share * (dev.is_cpu() ? mse_deterministic(pred, target) : ops::mse_forward(pred, target_d));
    dpred.zero_();
    ops::mse_backward(dpred, pred, target_d, share);
    model_->backward(arena_, dpred);
  }
  sync_->sync_gradients(ps);
  StepStats s;
  s.loss = sync_->sum_scalar(loss_local);
  s.grad_norm = sync_->grad_norm(ps);
  s.lr = schedule_.lr_at(state_.step);
  s.data_wait_s = batch.wait_s;
  if (!std::isfinite(s.grad_norm) || !std::isfinite(s.loss)) {
    s.skipped = true;
    ++state_.bad_in_row;
    ++state_.skipped_total;
    log::warn("step ", state_.step + 1, ": non-finite loss ", s.loss, " or gradient norm ",
              s.grad_norm, "; update skipped (", state_.bad_in_row, " in a row)");
    if (state_.bad_in_row >= cfg_.max_bad_steps)
      RAE_THROW("aborting: ", state_.bad_in_row, " non-finite steps in a row (last at step ",
                state_.step + 1, "; train.max_bad_steps = ", cfg_.max_bad_steps,
                "); lower optim.lr or check the data");
  } else {
    state_.bad_in_row = 0;
    const double coef =
        cfg_.clip_grad > 0 ? ops::clip_coefficient(s.grad_norm, cfg_.clip_grad) : 1.0;
    if (sync_->owns_optimizer()) {
      sync_->optimizer_step(ps, s.lr, coef, cfg_.ema_decay);
      state_.adam_step = sync_->optimizer_steps();
    } else {
      adam_->step(s.lr, coef);
      state_.adam_step = adam_->step_count();
      ema_->update(ps, cfg_.ema_decay);
    }
  }
  ++state_.step;
  state_.samples_seen += GB;
  state_.data = data_.position();
  s.step = state_.step;
  s.samples_per_s = static_cast<double>(GB) / std::max(seconds_since(t_start), 1e-9);
  return s;
}

void Trainer::log_metrics(const StepStats& s) {
  if (run_dir_.empty() || sync_->rank() != 0) return;
  nlohmann::json j = {{"step", s.step},
                      {"loss", s.loss},
                      {"lr", s.lr},
                      {"grad_norm", s.grad_norm},
                      {"samples_per_s", s.samples_per_s},
                      {"data_wait_s", s.data_wait_s},
                      {"skipped", s.skipped}};
  if (device_.is_cuda()) j["peak_device_mem_gib"] = peak_device_gib(device_);
  metrics_ << j.dump() << "\n";
  metrics_.flush();
  if (tb_) log_step_events(*tb_, j);  // TensorBoard, beside metrics.jsonl (train/run_events.h)
}

std::string Trainer::save_checkpoint() {
  if (run_dir_.empty()) return "";
  if (sync_->owns_checkpoints())  // collective: every rank writes its shard
    return sync_->save_checkpoint(run_dir_, model_->params(), state_, cfg_.keep_last,
                                  cfg_.keep_every);
  if (sync_->rank() != 0) return "";
  return write_checkpoint(run_dir_, model_->params(), *ema_, *adam_, state_, cfg_.keep_last,
                          cfg_.keep_every);
}

void Trainer::run() {
  const bool lead = sync_->rank() == 0 && !run_dir_.empty();
  if (lead) {
    fs::create_directories(run_dir_);
    write_file_atomic((fs::path(run_dir_) / "config.cfg").string(), cfg_.to_ini());
    // What the config resolved to: the model (grid, channels, classes from the data), the
    // flow-matching constants and the data source.
    nlohmann::json run = {
        {"model", nlohmann::json::parse(state_.model_config)},
        {"parameters", model_->params().num_params()},
        {"time_shift", flow_.shift},
        {"data", {{"samples", data_.size()}, {"steps_per_epoch", data_.steps_per_epoch()}}}};
    write_file_atomic((fs::path(run_dir_) / "run.json").string(), run.dump(2) + "\n");
    const std::string mpath = (fs::path(run_dir_) / "metrics.jsonl").string();
    truncate_metrics(mpath, state_.step);
    metrics_.open(mpath, std::ios::app);
    RAE_CHECK(metrics_.good(), "cannot open ", mpath);
    tb_ = open_run_events(run_dir_, state_.step);
  }
  const auto t0 = Clock::now();
  const bool tty = isatty(fileno(stderr));
  const int64_t first = state_.step;
  double ema_loss = 0;
  bool stopped = false, saved = false;  // stop requests: train/stop_request.h
  while (state_.step < cfg_.steps && !stopped) {
    StepStats s = step();
    ema_loss = s.step == first + 1 ? s.loss : 0.9 * ema_loss + 0.1 * s.loss;
    if (s.step % cfg_.log_every == 0 || s.step == cfg_.steps) {
      log_metrics(s);
      if (lead && cfg_.progress) {
        double el = seconds_since(t0);
        double eta = el / static_cast<double>(s.step - first) * (cfg_.steps - s.step);
        // One updating line on a terminal; one line per logged step in a log file (Slurm).
        std::fprintf(stderr,
                     "%sstep %lld/%lld  loss %.4f (avg %.4f)  lr %.2e  |g| %.3f  %.1f samples/s  "
                     "eta %.0fs %s",
                     tty ? "\r" : "", static_cast<long long>(s.step),
                     static_cast<long long>(cfg_.steps), s.loss, ema_loss, s.lr, s.grad_norm,
                     s.samples_per_s, eta, tty ? "" : "\n");
        std::fflush(stderr);
      }
    }
    saved = s.step % cfg_.ckpt_every == 0 && s.step != cfg_.steps;
    if (saved) save_checkpoint();
    stopped = stop_at_step_boundary();  // collective: every rank stops after the same step
  }
  if (lead && cfg_.progress && tty) std::fprintf(stderr, "\n");
  // The final checkpoint is always written (the loop skips the last step's periodic one); a
  // stop request right after a periodic one does not write it twice.
  if (!(stopped && saved)) {
    std::string p = save_checkpoint();
    if (lead) log::info("checkpoint ", p);
  }
  if (lead && device_.is_cuda()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", peak_device_gib(device_));
    log::info("peak device memory ", buf, " GiB (", cfg_.precision, ")");
  }
}

}  // namespace rae::train
