#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "ops/optim.h"
#include "ops/precision.h"
#include "train/run_dir.h"
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

// Keeps the lines of metrics.jsonl with step <= `step` (a resumed run rewrites the rest), so
// every step is logged once. A line that does not parse is kept, except a last line without
// its newline (a write cut by a kill).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  in.close();
  std::string kept;
  for (size_t a = 0; a < text.size();) {
    size_t b = text.find('\n', a);
    const bool torn = b == std::string::npos;
    if (torn) b = text.size();
    const std::string line = text.substr(a, b - a);
    a = b + 1;
    if (line.empty()) continue;
    int64_t s = -1;
    try {
      s = nlohmann::json::parse(line).at("step").get<int64_t>();
    } catch (const std::exception&) {
      if (torn) continue;
    }
    if (s <= step) kept += line + "\n";
  }
  if (kept != text) write_file_atomic(path, kept);
}

// "key=value" words of a data-order signature (the first word names the kind of source).
std::map<std::string, std::string> signature_fields(const std::string& sig) {
  std::map<std::string, std::string> out;
  std::istringstream in(sig);
  for (std::string w; in >> w;) {
    const size_t eq = w.find('=');
    out[eq == std::string::npos ? "source" : w.substr(0, eq)] =
        eq == std::string::npos ? w : w.substr(eq + 1);
  }
  return out;
}

// What differs between two data-order signatures, naming the config keys behind them:
// "train.seed 42 in the checkpoint, 43 now; ...".
std::string signature_changes(const std::string& stored, const std::string& now) {
  const auto a = signature_fields(stored), b = signature_fields(now);
  std::set<std::string> keys;
  for (auto& [k, v] : a) keys.insert(k);
  for (auto& [k, v] : b) keys.insert(k);
  std::string out;
  for (const std::string& k : keys) {
    auto ia = a.find(k), ib = b.find(k);
    const std::string va = ia == a.end() ? "(none)" : ia->second;
    const std::string vb = ib == b.end() ? "(none)" : ib->second;
    if (va == vb) continue;
    const std::string name = k == "seed"           ? "train.seed"
                             : k == "global_batch" ? "train.global_batch_size"
                                                   : "data " + k;
    out += (out.empty() ? "" : "; ") + name + " " + va + " in the checkpoint, " + vb + " now";
  }
  return out;
}

// Peak bytes held by the CUDA caching allocator since the process started (0 on the CPU).
double peak_device_gib(const Device& dev) {
#ifdef RAE_WITH_CUDA
  if (dev.is_cuda()) return static_cast<double>(cuda_memory::stats().peak_in_use) / (1 << 30);
#endif
  (void)dev;
  return 0;
}

DType comm_dtype_of(const std::string& name) {
  return name == "bf16" ? DType::BF16 : DType::F32;
}

}  // namespace

Device training_device(const TrainConfig& cfg, distributed::Communicator* world) {
  Device d = parse_device(cfg.device);
  if (!d.is_cuda() || !world) return d;
  if (world->device().is_cuda()) return world->device();  // NCCL: the communicator's GPU
  if (cfg.device == "cuda" && cuda_device_count() > 0)
    return Device::cuda(world->topology().physical_local_rank % cuda_device_count());
  return d;
}

Trainer::Trainer(const TrainConfig& cfg, BatchStream& data, const std::string& run_dir,
                 distributed::Communicator* world, std::unique_ptr<Objective> objective)
    : cfg_(cfg),
      data_(data),
      run_dir_(run_dir),
      world_(world),
      objective_(objective ? std::move(objective) : make_objective(cfg)) {
  device_ = training_device(cfg, world);
  // Precision (config.h): on CUDA the GEMM precision of F32 tensors; bf16 also keeps the
  // activations and the parameters the model computes with in BF16 (master weights, gradients,
  // optimizer state and the loss stay F32).
  DType act_dtype = DType::F32;
  if (device_.is_cuda()) {
    RAE_CHECK(cuda_available(), "train.device = ", cfg.device,
              ": no CUDA device (or a build without CUDA)");
    ops::set_precision(ops::precision_from_name(cfg.precision));
    if (cfg.precision == "bf16") act_dtype = DType::BF16;
  } else {
    RAE_CHECK(cfg.precision != "bf16", "train.precision = bf16 needs train.device = cuda");
  }
  const int64_t W = world ? world->size() : 1;
  RAE_CHECK(cfg.global_batch_size % (W * cfg.grad_accum_steps) == 0, "train.global_batch_size ",
            cfg.global_batch_size, " is not divisible by ranks (", W,
            ") x train.grad_accum_steps (", cfg.grad_accum_steps, ")");
  data_.open(StreamOptions{cfg.global_batch_size, rank(), static_cast<int>(W),
                           static_cast<uint64_t>(cfg.seed)});
  const std::vector<ModelRole> roles = objective_->roles(cfg, data_);
  groups_ = distributed::ShardGroups::make(world, distributed::parse_strategy(cfg.shard));
  distributed::ShardingOptions so;
  so.strategy = groups_.strategy;
  so.param_dtype = act_dtype;
  so.comm_dtype = comm_dtype_of(cfg.comm_dtype);
  so.bucket_numel = std::max<int64_t>(1, static_cast<int64_t>(cfg.bucket_mb * (1 << 20) / 4));
  for (size_t i = 0; i < roles.size(); ++i) {
    auto tm = std::make_unique<TrainedModel>();
    tm->name = roles[i].name;
    tm->spec = roles[i].spec;
    tm->module = models::build_model(roles[i].spec);
    tm->module->init(static_cast<uint64_t>(cfg.seed) + i);  // models of one run differ
    tm->module->to(device_);
    tm->params = std::make_unique<distributed::ShardedParams>(*tm->module, groups_, device_, so);
    tm->optimizer =
        std::make_unique<AdamW>(tm->params->masters(), tm->params->grads(), roles[i].optim);
    tm->first_step = roles[i].first_step;
    state_.adam_steps[tm->name] = 0;
    models_.push_back(std::move(tm));
  }
  objective_->attach(models(), StepEnv{device_, act_dtype, rank(), static_cast<int>(W), world});
  if (cfg.cuda_graph) {
    RAE_CHECK(W == 1 && models_.size() == 1 && cfg.grad_accum_steps == 1,
              "train.cuda_graph needs one process, one trained model and "
              "train.grad_accum_steps = 1 (this run: ",
              W, " ranks, ", models_.size(), " models, ", cfg.grad_accum_steps, " micro-batches)");
    graph_ = std::make_unique<GraphStep>(*objective_, *models_.front(), device_);
  }
  state_.seed = static_cast<uint64_t>(cfg.seed);
  state_.data = data_.position();
  state_.data_signature = data_.order_signature();
  if (rank() == 0) {
    for (const auto& m : models_)
      log::info("model '", m->name, "': ", m->module->summary(), "; ", m->params->describe());
    log::info(objective_->name(), " ", objective_->describe().dump(), ", device ", device_.str(),
              ", precision ", device_.is_cuda() ? cfg.precision : std::string("fp32"), ", ",
              data_.describe());
  }
}

Trainer::~Trainer() = default;

std::vector<TrainedModel*> Trainer::models() {
  std::vector<TrainedModel*> out;
  for (auto& m : models_) out.push_back(m.get());
  return out;
}

TrainedModel& Trainer::model(const std::string& name) {
  for (auto& m : models_)
    if (m->name == name) return *m;
  RAE_THROW("no trained model '", name, "'");
}

int64_t Trainer::resume(bool restart_from_scratch) {
  if (run_dir_.empty()) return 0;
  // Rank 0 tidies the run directory and picks the checkpoint (train/run_dir.h); a refusal
  // reaches every rank (-2), so that none waits for the others.
  int64_t step = -1;
  std::string refusal;
  if (rank() == 0) {
    try {
      const std::string d = prepare_resume(run_dir_, restart_from_scratch);
      if (!d.empty()) step = checkpoint_step(d);
    } catch (const std::exception& e) {
      refusal = e.what();
      step = -2;
    }
  }
  step = distributed::broadcast_i64(world_, step);
  if (step == -2) {
    if (rank() == 0) throw Error(refusal);
    RAE_THROW("rank ", rank(), ": rank 0 refused to resume the run directory (see its error)");
  }
  if (step < 0) return 0;
  const std::string dir = (fs::path(run_dir_) / "checkpoints" / checkpoint_name(step)).string();
  RunState st = load_checkpoint(dir, models(), world_);
  const std::string now = data_.order_signature();
  if (st.data_signature != now) {
    const std::string changes = signature_changes(st.data_signature, now);
    RAE_CHECK(cfg_.allow_data_change, "checkpoint ", dir, ": the data order changed: ", changes,
              " (stored signature '", st.data_signature, "', this run '", now,
              "'); resuming would train on another sequence of batches. Set "
              "--train.allow_data_change=true to resume anyway");
    if (rank() == 0)
      log::warn("checkpoint ", dir, ": data order changed: ", changes, " (stored '",
                st.data_signature, "', now '", now,
                "'); resuming anyway (train.allow_data_change)");
    st.data_signature = now;
  }
  try {
    data_.seek(st.data);
  } catch (const std::exception& e) {
    RAE_THROW("checkpoint ", dir, ": its data position ", st.data.dump(),
              " does not fit this data source (", e.what(), ")");
  }
  state_ = st;
  if (rank() == 0) log::info("resumed from ", dir, " (step ", st.step, ")");
  return st.step;
}

StepStats Trainer::step() {
  const auto t_start = Clock::now();
  const int64_t GB = cfg_.global_batch_size, K = cfg_.grad_accum_steps;
  const int64_t W = world_ ? world_->size() : 1, per_rank = GB / W, mb = per_rank / K;
  distributed::set_step(state_.step + 1);  // the step a watchdog report names (1-based, as logged)
  DataBatch batch = data_.next();
  RAE_CHECK(batch.latents.defined() && batch.latents.dim(0) == per_rank, "data batch ",
            batch.latents.str(), " has not this rank's ", per_rank, " samples");
  auto micro_batch = [&](int64_t k) {
    MicroBatch m;
    m.data = DataBatch{batch.latents.narrow(0, k * mb, mb), batch.labels.narrow(0, k * mb, mb),
                       batch.ids.narrow(0, k * mb, mb), 0};
    m.step = state_.step;
    m.share = static_cast<double>(mb) / static_cast<double>(GB);
    return m;
  };
  StepStats s;
  bool finite = true, updated = false;
  std::vector<double> norms;
  if (graph_ && graph_warm_) {  // the whole step on the device, the update included
    TrainedModel& tm = *models_.front();
    const OptimSettings& o = tm.optimizer->settings();
    try {
      GraphStep::Result g = graph_->run(micro_batch(0), tm.lr_at(state_.step), o.clip_grad);
      s.metrics["loss"] = g.loss;
      norms.push_back(g.grad_norm);
      finite = !g.skipped;
      updated = true;
    } catch (const std::exception& e) {
      // A step that cannot be captured (an op that reads a value back, say) must not end the
      // run: it trains on eagerly. A failure after a successful capture is a real error.
      if (graph_->captures() > 0) throw;
      if (rank() == 0)
        log::warn("train.cuda_graph: the step could not be captured (", e.what(),
                  "); training continues without a CUDA graph");
      graph_.reset();
    }
  }
  if (!updated) {
    Metrics sums;
    for (int64_t k = 0; k < K; ++k) {
      MicroBatch m = micro_batch(k);
      for (auto& tm : models_)
        tm->params->begin_micro_batch(static_cast<int>(k), static_cast<int>(K));
      for (auto& [name, v] : objective_->micro_step(m)) sums[name] += v;
      for (auto& tm : models_) tm->params->end_micro_batch();
    }
    for (auto& [name, v] : sums) s.metrics[name] = distributed::sum_f64(world_, v);
    finite = std::isfinite(s.metrics["loss"]);
    for (auto& tm : models_) {
      tm->params->finish_gradients();
      norms.push_back(std::sqrt(tm->params->grad_sum_squares()));
      finite = finite && std::isfinite(norms.back());
      if (models_.size() > 1) {
        s.metrics["grad_norm." + tm->name] = norms.back();
        s.metrics["lr." + tm->name] = tm->lr_at(state_.step);
      }
    }
    graph_warm_ = graph_ != nullptr;  // the next step captures (shapes and algorithms settled)
  }
  s.loss = s.metrics["loss"];
  s.grad_norm = norms.front();
  s.lr = models_.front()->lr_at(state_.step);
  s.data_wait_s = batch.wait_s;
  if (!finite) {
    s.skipped = true;
    ++state_.bad_in_row;
    ++state_.skipped_total;
    if (rank() == 0)
      log::warn("step ", state_.step + 1, ": non-finite loss ", s.loss, " or gradient norm ",
                s.grad_norm, "; update skipped (", state_.bad_in_row, " in a row)");
    if (state_.bad_in_row >= cfg_.max_bad_steps)
      RAE_THROW("aborting: ", state_.bad_in_row, " non-finite steps in a row (last at step ",
                state_.step + 1, "; train.max_bad_steps = ", cfg_.max_bad_steps,
                "); lower optim.lr or check the data");
  } else {
    const auto g = s.metrics.find(objective_->guard_metric());
    RAE_CHECK(g != s.metrics.end(), "objective '", objective_->name(), "' names guard metric '",
              objective_->guard_metric(), "', which its step does not report");
    const double guarded = g->second;
    check_loss_spike(guarded);
    state_.bad_in_row = 0;
    state_.loss_mean = state_.loss_steps == 0 ? guarded : 0.99 * state_.loss_mean + 0.01 * guarded;
    ++state_.loss_steps;
    for (size_t i = 0; i < models_.size(); ++i) {
      TrainedModel& tm = *models_[i];
      if (state_.step < tm.first_step) continue;  // not updated yet (ModelRole::first_step)
      const OptimSettings& o = tm.optimizer->settings();
      if (!updated) {  // (the graph step made its update on the device)
        const double coef = o.clip_grad > 0 ? ops::clip_coefficient(norms[i], o.clip_grad) : 1.0;
        tm.optimizer->step(tm.lr_at(state_.step), coef);
        tm.params->publish();
      }
      state_.adam_steps[tm.name] = tm.optimizer->step_count();
    }
  }
  ++state_.step;
  state_.samples_seen += GB;
  state_.data = data_.position();
  s.step = state_.step;
  s.samples_per_s = static_cast<double>(GB) / std::max(seconds_since(t_start), 1e-9);
  return s;
}

// Before the update of step state_.step + 1: a finite loss far above the running mean (corrupt
// data that passed its checksums, a diverging learning rate) stops the run here, with the model,
// optimizer and data position still those of the previous step and nothing written: the run
// directory's newest checkpoint is from before the spike.
void Trainer::check_loss_spike(double loss) const {
  const double factor = cfg_.loss_spike_factor;
  if (factor <= 0 || state_.loss_steps < cfg_.loss_spike_warmup || state_.loss_mean <= 0 ||
      loss <= factor * state_.loss_mean)
    return;
  std::string newest = "none";
  if (!run_dir_.empty())
    if (auto all = list_checkpoints(run_dir_); !all.empty()) newest = all.front();
  RAE_THROW("step ", state_.step + 1, ": ", objective_->guard_metric(), " ", loss, " is ",
            loss / state_.loss_mean, " times its running mean ", state_.loss_mean,
            " (train.loss_spike_factor = ", factor,
            "); stopping before the update. Corrupt data (its checksums pass, so the values "
            "themselves: check how the cache was made) or a learning rate that diverges "
            "(optim.lr) are the usual causes. Nothing was written; the newest checkpoint is ",
            newest,
            ", and a rerun resumes from it (train.loss_spike_factor = 0 turns the guard "
            "off)");
}

void Trainer::log_metrics(const StepStats& s) {
  if (run_dir_.empty() || rank() != 0) return;
  nlohmann::json j = {{"step", s.step},
                      {"loss", s.loss},
                      {"lr", s.lr},
                      {"grad_norm", s.grad_norm},
                      {"samples_per_s", s.samples_per_s},
                      {"data_wait_s", s.data_wait_s},
                      {"skipped", s.skipped}};
  for (auto& [k, v] : s.metrics)
    if (!j.contains(k)) j[k] = v;
  if (device_.is_cuda()) j["peak_device_mem_gib"] = peak_device_gib(device_);
  metrics_ << j.dump() << "\n";
  metrics_.flush();
  if (tb_) log_step_events(*tb_, j);  // TensorBoard, beside metrics.jsonl (train/run_events.h)
}

std::string Trainer::save_checkpoint() {
  if (run_dir_.empty()) return "";
  return train::save_checkpoint(run_dir_, models(), *objective_, state_, cfg_.keep_last,
                                cfg_.keep_every, world_);
}

// config.cfg (the effective config) and run.json (what it resolved to: models, objective
// constants, data, layout).
void Trainer::write_run_files() {
  fs::create_directories(run_dir_);
  write_file_atomic((fs::path(run_dir_) / "config.cfg").string(), cfg_.to_ini());
  nlohmann::json ms = nlohmann::json::array();
  for (const auto& m : models_)
    ms.push_back({{"name", m->name},
                  {"type", m->spec.type},
                  {"config", m->spec.config},
                  {"parameters", m->module->params().num_params()}});
  nlohmann::json run = {
      {"models", ms},
      {"objective", {{"name", objective_->name()}, {"constants", objective_->describe()}}},
      {"data",
       {{"source", data_.describe()},
        {"samples", data_.size()},
        {"steps_per_epoch", data_.steps_per_epoch()},
        {"order_signature", data_.order_signature()}}},
      {"world_size", world_ ? world_->size() : 1},
      {"strategy", cfg_.shard},
      {"device", device_.str()}};
  write_file_atomic((fs::path(run_dir_) / "run.json").string(), run.dump(2) + "\n");
}

void Trainer::run() {
  const bool lead = rank() == 0 && !run_dir_.empty();
  if (lead) {
    write_run_files();
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
    if (step_callback_) step_callback_(s);
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
  if (lead) {
    int64_t peak = 0;
    for (const auto& m : models_) peak += m->params->bytes_peak();
    log::info("measured peak params+grads per rank: ", peak, " bytes");
  }
  if (lead && device_.is_cuda()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", peak_device_gib(device_));
    log::info("peak device memory ", buf, " GiB (", cfg_.precision, ")");
  }
}

}  // namespace rae::train
