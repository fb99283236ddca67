#include "train/config.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/device.h"
#include "core/error.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rae::train {

namespace {

// One table drives registration, parsing and the effective-config dump.
struct Key {
  const char* name;
  enum Kind { Int, Double, String, Bool } kind;
  const char* help;
};

const Key kKeys[] = {
    {"model.preset", Key::String, "DiTDH-{micro,tiny,S,B,L,XL} or DiT-{micro,S,B,L,XL}"},
    {"model.overrides", Key::String,
     "JSON object of config keys replacing the preset's (e.g. {\"body_depth\":6})"},
    {"model.class_dropout", Key::Double, "class-label dropout probability (CFG)"},
    {"data.normalize", Key::Bool,
     "normalise latents with the cache's statistics, (z - mean) / sqrt(var + 1e-5)"},
    {"transport.time_dist", Key::String, "uniform | logit-normal_MU_SIGMA"},
    {"transport.shift_base", Key::Double, "time shift base (a = sqrt(dim / base))"},
    {"transport.shift_dim", Key::Int, "time shift dim (0: H*W*C of the cache)"},
    {"train.steps", Key::Int, "total optimizer steps of the run"},
    {"train.global_batch_size", Key::Int, "samples per optimizer step"},
    {"train.grad_accum_steps", Key::Int, "micro-batches per step"},
    {"train.seed", Key::Int, "global seed"},
    {"train.clip_grad", Key::Double, "max global gradient norm (<= 0: off)"},
    {"train.ema_decay", Key::Double, "EMA decay"},
    {"train.max_bad_steps", Key::Int, "abort after this many non-finite steps in a row"},
    {"train.loss_spike_factor", Key::Double,
     "stop when a loss exceeds this many times its running mean (0: off)"},
    {"train.loss_spike_warmup", Key::Int,
     "updates before the loss-spike guard starts (its running mean settles)"},
    {"train.device", Key::String, "cpu | cuda | cuda:N (model, activations, optimizer)"},
    {"train.allow_data_change", Key::Bool,
     "resume even if the data order (seed, batch, cache) changed (logged)"},
    {"train.precision", Key::String,
     "fp32 | tf32 | bf16 (CUDA: GEMM precision; bf16 = BF16 activations, F32 master weights)"},
    {"train.cuda_graph", Key::Bool,
     "capture the step as a CUDA graph after a warm-up step (one process, no grad accumulation)"},
    {"optim.lr", Key::Double, "base learning rate"},
    {"optim.beta1", Key::Double, "AdamW beta1"},
    {"optim.beta2", Key::Double, "AdamW beta2"},
    {"optim.eps", Key::Double, "AdamW eps"},
    {"optim.weight_decay", Key::Double, "AdamW decoupled weight decay"},
    {"schedule.type", Key::String, "constant | linear | cosine"},
    {"schedule.warmup_steps", Key::Int, "warmup steps"},
    {"schedule.decay_end_steps", Key::Int, "step where the decay ends"},
    {"schedule.warmup_epochs", Key::Double, "warmup in epochs (>= 0 overrides warmup_steps)"},
    {"schedule.decay_end_epoch", Key::Double, "decay end in epochs (>= 0 overrides)"},
    {"schedule.final_lr", Key::Double, "final learning rate (< 0: = optim.lr)"},
    {"schedule.warmup_from_zero", Key::Bool, "linear warmup from 0 (else constant)"},
    {"log.every", Key::Int, "log every N steps"},
    {"log.progress", Key::Bool, "print a progress line"},
    {"checkpoint.every", Key::Int, "checkpoint every N steps (a final one is always written)"},
    {"checkpoint.keep_last", Key::Int, "keep the newest N checkpoints"},
    {"checkpoint.keep_every", Key::Int, "also keep every checkpoint whose step is a multiple of M"},
    {"dist.shard", Key::String, "no_shard | shard_grad_op | full_shard | hybrid_shard (mpirun)"},
    {"dist.comm_dtype", Key::String, "gradients on the wire: fp32 | bf16"},
    {"dist.bucket_mb", Key::Double, "MiB of f32 per communication bucket at most"},
    {"dist.timeout_s", Key::Double, "watchdog: a collective waiting longer aborts the job"},
    {"dist.node_size", Key::Int, "ranks per node for hybrid_shard (0: ranks sharing memory)"},
    {"dist.backend", Key::String, "auto (nccl for CUDA training) | mpi | nccl"},
};

// Pointers into a TrainConfig for each key, in kKeys order.
struct Binding {
  int64_t* i = nullptr;
  double* d = nullptr;
  std::string* s = nullptr;
  bool* b = nullptr;
};

std::vector<Binding> bind(TrainConfig& c) {
  return {{nullptr, nullptr, &c.preset},
          {nullptr, nullptr, &c.model_overrides},
          {nullptr, &c.class_dropout},
          {nullptr, nullptr, nullptr, &c.normalize},
          {nullptr, nullptr, &c.time_dist},
          {nullptr, &c.shift_base},
          {&c.shift_dim},
          {&c.steps},
          {&c.global_batch_size},
          {&c.grad_accum_steps},
          {&c.seed},
          {nullptr, &c.clip_grad},
          {nullptr, &c.ema_decay},
          {&c.max_bad_steps},
          {nullptr, &c.loss_spike_factor},
          {&c.loss_spike_warmup},
          {nullptr, nullptr, &c.device},
          {nullptr, nullptr, nullptr, &c.allow_data_change},
          {nullptr, nullptr, &c.precision},
          {nullptr, nullptr, nullptr, &c.cuda_graph},
          {nullptr, &c.lr},
          {nullptr, &c.beta1},
          {nullptr, &c.beta2},
          {nullptr, &c.eps},
          {nullptr, &c.weight_decay},
          {nullptr, nullptr, &c.schedule},
          {&c.warmup_steps},
          {&c.decay_end_steps},
          {nullptr, &c.warmup_epochs},
          {nullptr, &c.decay_end_epoch},
          {nullptr, &c.final_lr},
          {nullptr, nullptr, nullptr, &c.warmup_from_zero},
          {&c.log_every},
          {nullptr, nullptr, nullptr, &c.progress},
          {&c.ckpt_every},
          {&c.keep_last},
          {&c.keep_every},
          {nullptr, nullptr, &c.shard},
          {nullptr, nullptr, &c.comm_dtype},
          {nullptr, &c.bucket_mb},
          {nullptr, &c.timeout_s},
          {&c.node_size},
          {nullptr, nullptr, &c.backend}};
}

// Shortest text that reads back to the same double (0.1, not 0.10000000000000001).
std::string fmt_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Sets the fields of the keys present in `vm` (no validation).
void fill_from(TrainConfig& c, const po::variables_map& vm) {
  auto b = bind(c);
  for (size_t i = 0; i < b.size(); ++i) {
    const Key& k = kKeys[i];
    if (!vm.count(k.name)) continue;
    switch (k.kind) {
      case Key::Int:
        *b[i].i = vm[k.name].as<int64_t>();
        break;
      case Key::Double:
        *b[i].d = vm[k.name].as<double>();
        break;
      case Key::String:
        *b[i].s = vm[k.name].as<std::string>();
        break;
      case Key::Bool:
        *b[i].b = vm[k.name].as<bool>();
        break;
    }
  }
}

}  // namespace

po::options_description train_options() {
  po::options_description d("training config keys (--section.key=value)");
  TrainConfig defaults;
  auto b = bind(defaults);
  static_assert(sizeof(kKeys) / sizeof(kKeys[0]) == 43);
  for (size_t i = 0; i < b.size(); ++i) {
    const Key& k = kKeys[i];
    switch (k.kind) {
      case Key::Int:
        d.add_options()(k.name, po::value<int64_t>()->default_value(*b[i].i), k.help);
        break;
      case Key::Double:
        d.add_options()(k.name, po::value<double>()->default_value(*b[i].d, fmt_double(*b[i].d)),
                        k.help);
        break;
      case Key::String:
        d.add_options()(k.name, po::value<std::string>()->default_value(*b[i].s), k.help);
        break;
      case Key::Bool:
        d.add_options()(k.name, po::value<bool>()->default_value(*b[i].b), k.help);
        break;
    }
  }
  return d;
}

void TrainConfig::from_variables(const po::variables_map& vm) {
  fill_from(*this, vm);
  validate();
}

namespace {

// The checks of one key's value alone, for the keys `wanted` accepts (a config file is checked
// for the keys it sets: its values may be fine only together with command-line overrides, so the
// combinations are checked once everything is read, in TrainConfig::validate).
void check_values(const TrainConfig& c, const std::function<bool(const std::string&)>& wanted) {
  auto need = [&](bool ok, const char* key, const auto& v, const char* what) {
    if (!ok && wanted(key)) RAE_THROW("config key '", key, "': value ", v, " ", what);
  };
  TrainConfig copy = c;
  auto b = bind(copy);
  for (size_t i = 0; i < b.size(); ++i)  // inf and nan pass most range checks below: refused here
    if (kKeys[i].kind == Key::Double)
      need(std::isfinite(*b[i].d), kKeys[i].name, *b[i].d, "must be a finite number");
  need(c.steps >= 0, "train.steps", c.steps, "must be >= 0");
  need(c.global_batch_size >= 1, "train.global_batch_size", c.global_batch_size, "must be >= 1");
  need(c.grad_accum_steps >= 1, "train.grad_accum_steps", c.grad_accum_steps, "must be >= 1");
  need(c.seed >= 0, "train.seed", c.seed, "must be >= 0");
  need(c.class_dropout >= 0 && c.class_dropout < 1, "model.class_dropout", c.class_dropout,
       "must be in [0, 1)");
  need(c.ema_decay >= 0 && c.ema_decay <= 1, "train.ema_decay", c.ema_decay, "must be in [0, 1]");
  need(c.max_bad_steps >= 1, "train.max_bad_steps", c.max_bad_steps, "must be >= 1");
  need(c.loss_spike_factor == 0 || c.loss_spike_factor > 1, "train.loss_spike_factor",
       c.loss_spike_factor, "must be 0 (off) or > 1");
  need(c.loss_spike_warmup >= 0, "train.loss_spike_warmup", c.loss_spike_warmup, "must be >= 0");
  bool device_ok = true;
  try {
    parse_device(c.device);
  } catch (const std::exception&) {
    device_ok = false;
  }
  need(device_ok, "train.device", "'" + c.device + "'", "must be cpu, cuda or cuda:N");
  need(c.precision == "fp32" || c.precision == "tf32" || c.precision == "bf16", "train.precision",
       "'" + c.precision + "'", "must be fp32, tf32 or bf16");
  need(c.lr >= 0, "optim.lr", c.lr, "must be >= 0");
  need(c.beta1 >= 0 && c.beta1 < 1, "optim.beta1", c.beta1, "must be in [0, 1)");
  need(c.beta2 >= 0 && c.beta2 < 1, "optim.beta2", c.beta2, "must be in [0, 1)");
  need(c.eps > 0, "optim.eps", c.eps, "must be > 0");
  need(c.weight_decay >= 0, "optim.weight_decay", c.weight_decay, "must be >= 0");
  need(c.schedule == "constant" || c.schedule == "linear" || c.schedule == "cosine",
       "schedule.type", "'" + c.schedule + "'", "must be constant, linear or cosine");
  need(c.warmup_steps >= 0, "schedule.warmup_steps", c.warmup_steps, "must be >= 0");
  need(c.decay_end_steps >= 0, "schedule.decay_end_steps", c.decay_end_steps, "must be >= 0");
  need(c.shift_base > 0, "transport.shift_base", c.shift_base, "must be > 0");
  need(c.shift_dim >= 0, "transport.shift_dim", c.shift_dim, "must be >= 0");
  need(c.log_every >= 1, "log.every", c.log_every, "must be >= 1");
  need(c.ckpt_every >= 1, "checkpoint.every", c.ckpt_every, "must be >= 1");
  need(c.keep_last >= 1, "checkpoint.keep_last", c.keep_last, "must be >= 1");
  need(c.keep_every >= 0, "checkpoint.keep_every", c.keep_every, "must be >= 0");
  need(c.time_dist == "uniform" || c.time_dist.rfind("logit-normal_", 0) == 0,
       "transport.time_dist", "'" + c.time_dist + "'", "must be uniform or logit-normal_MU_SIGMA");
  bool overrides_ok = false;
  try {
    overrides_ok = nlohmann::json::parse(c.model_overrides).is_object();
  } catch (const nlohmann::json::exception&) {
  }
  need(overrides_ok, "model.overrides", c.model_overrides, "must be a JSON object");
  need(c.shard == "no_shard" || c.shard == "shard_grad_op" || c.shard == "full_shard" ||
           c.shard == "hybrid_shard",
       "dist.shard", "'" + c.shard + "'",
       "must be no_shard, shard_grad_op, full_shard or hybrid_shard");
  need(c.comm_dtype == "fp32" || c.comm_dtype == "bf16", "dist.comm_dtype",
       "'" + c.comm_dtype + "'", "must be fp32 or bf16");
  need(c.bucket_mb > 0, "dist.bucket_mb", c.bucket_mb, "must be > 0");
  need(c.timeout_s > 0, "dist.timeout_s", c.timeout_s, "must be > 0");
  need(c.node_size >= 0, "dist.node_size", c.node_size, "must be >= 0");
  need(c.backend == "auto" || c.backend == "mpi" || c.backend == "nccl", "dist.backend",
       "'" + c.backend + "'", "must be auto, mpi or nccl");
}

}  // namespace

void TrainConfig::validate() const {
  check_values(*this, [](const std::string&) { return true; });
  // Combinations of keys.
  auto need = [](bool ok, const char* key, const auto& v, const char* what) {
    if (!ok) RAE_THROW("config key '", key, "': value ", v, " ", what);
  };
  need(global_batch_size % grad_accum_steps == 0, "train.grad_accum_steps", grad_accum_steps,
       "must divide train.global_batch_size");
  need(!cuda_graph || grad_accum_steps == 1, "train.cuda_graph", "true",
       "needs train.grad_accum_steps = 1 (one captured micro-step per step)");
  need(precision != "bf16" || parse_device(device).is_cuda(), "train.precision",
       "'" + precision + "'",
       "needs train.device = cuda (BF16 activations are a CUDA feature; the CPU trains in fp32)");
}

std::string program_options_placeholder_in(const std::string& text) {
  // Any %name% (Boost's placeholders include %canonical_option%, %value%, %invalid_line%, ...).
  for (size_t a = text.find('%'); a != std::string::npos; a = text.find('%', a + 1)) {
    size_t b = a + 1;
    while (b < text.size() && (std::isalpha(static_cast<unsigned char>(text[b])) || text[b] == '_'))
      ++b;
    if (b > a + 1 && b < text.size() && text[b] == '%') return text.substr(a, b - a + 1);
  }
  return "";
}

void check_config_file(const std::string& path, const po::options_description* extra) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  RAE_CHECK(fs::exists(st), "config file '", path, "' does not exist");
  RAE_CHECK(fs::is_regular_file(st), "config file '", path, "' is ",
            fs::is_directory(st) ? "a directory" : "not a regular file", ", not a config file");
  std::ifstream in(path);
  RAE_CHECK(in.good(), "cannot read config file '", path, "': ", std::strerror(errno));
  {
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      const std::string p = program_options_placeholder_in(line);
      RAE_CHECK(p.empty(), "config file '", path, "' line ", n, ": '", p,
                "' is not allowed in a config file");
    }
    in.clear();
    in.seekg(0);
  }
  po::variables_map vm;
  po::options_description keys = train_options();
  if (extra) keys.add(*extra);
  try {
    po::store(po::parse_config_file(in, keys, false), vm);
  } catch (const po::error& e) {
    RAE_THROW("config file '", path, "': ", e.what());
  }
  TrainConfig c;
  fill_from(c, vm);
  try {
    check_values(c, [&](const std::string& key) { return vm.count(key) && !vm[key].defaulted(); });
  } catch (const std::exception& e) {
    RAE_THROW("config file '", path, "': ", e.what());
  }
}

std::string TrainConfig::to_ini() const {
  TrainConfig copy = *this;
  auto b = bind(copy);
  std::ostringstream os;
  std::string section;
  for (size_t i = 0; i < b.size(); ++i) {
    std::string name = kKeys[i].name;
    auto dot = name.find('.');
    std::string sec = name.substr(0, dot), key = name.substr(dot + 1);
    if (sec != section) os << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
    section = sec;
    os << key << " = ";
    switch (kKeys[i].kind) {
      case Key::Int:
        os << *b[i].i;
        break;
      case Key::Double:
        os << fmt_double(*b[i].d);
        break;
      case Key::String:
        os << *b[i].s;
        break;
      case Key::Bool:
        os << (*b[i].b ? "true" : "false");
        break;
    }
    os << "\n";
  }
  return os.str();
}

TrainConfig parse_train_config(const std::string& path, const std::vector<std::string>& overrides,
                               const po::options_description* extra, po::variables_map* extra_vm) {
  po::options_description desc = train_options();
  if (extra) desc.add(*extra);
  po::variables_map vm;
  try {
    // Command-line overrides first: Boost keeps the first stored value of each key.
    std::vector<std::string> args = overrides;
    for (const std::string& a : args)
      RAE_CHECK(program_options_placeholder_in(a).empty(), "command line: '", a, "' contains '",
                program_options_placeholder_in(a), "', which is not allowed");
    po::store(po::command_line_parser(args).options(desc).run(), vm);
  } catch (const po::error& e) {
    RAE_THROW("command line: ", e.what());
  }
  if (!path.empty()) {
    check_config_file(path, extra);
    std::ifstream in(path);
    RAE_CHECK(in.good(), "cannot open config file '", path, "'");
    try {
      po::store(po::parse_config_file(in, desc, false), vm);
    } catch (const po::error& e) {
      RAE_THROW("config file '", path, "': ", e.what());
    }
  }
  po::notify(vm);
  TrainConfig c;
  c.from_variables(vm);
  if (extra_vm) *extra_vm = vm;
  return c;
}

}  // namespace rae::train
