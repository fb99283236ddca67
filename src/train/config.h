// Training configuration: INI-style config files read with Boost.Program_options
// ([section] then key = value), overridable on the command line as --section.key=value.
// Unknown keys and malformed values are rejected before any work, naming the key.
#pragma once
#include <boost/program_options.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace rae::train {

struct TrainConfig {
  // [model]
  std::string preset = "DiTDH-S";      // models/registry.h presets
  std::string model_overrides = "{}";  // JSON object merged into the preset's config
  double class_dropout = 0.1;
  // [data]
  bool normalize = true;  // (z - mean) / sqrt(var + 1e-5) with the cache's statistics (release)
  // [transport]
  std::string time_dist = "logit-normal_0_1";
  double shift_base = 4096;
  int64_t shift_dim = 0;  // 0: H * W * C of the cache
  // [train]
  int64_t steps = 1000;
  int64_t global_batch_size = 32;
  int64_t grad_accum_steps = 1;
  int64_t seed = 42;
  double clip_grad = 1.0;  // <= 0: no clipping
  double ema_decay = 0.9995;
  int64_t max_bad_steps = 5;
  // The loss-spike guard (trainer.h): a finite loss above loss_spike_factor x the running mean
  // of the losses before it stops the run, once loss_spike_warmup updates are done. 0: off.
  double loss_spike_factor = 10;
  int64_t loss_spike_warmup = 100;
  std::string device = "cpu";  // cpu | cuda | cuda:N
  // Resume even when the stored data-order signature differs from this run's (logged).
  bool allow_data_change = false;
  // fp32 | tf32 | bf16. On CUDA: the GEMM precision of F32 tensors (ops/precision.h); bf16 also
  // stores activations in BF16 (F32 master weights, gradients, optimizer state and loss). On the
  // CPU: fp32, or tf32 read as fp32 (CPU ops compute in F32); bf16 is rejected.
  std::string precision = "fp32";
  // CUDA: after a warm-up step, capture the step (forward, backward, loss, gradient norm, clip,
  // AdamW, EMA, bf16 refresh) as a CUDA graph and replay it (train/graph_step.h); needs one
  // process and train.grad_accum_steps = 1. On the CPU the same split step runs without a graph.
  bool cuda_graph = false;
  // [optim]
  double lr = 2e-4, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
  // [schedule]
  std::string schedule = "constant";  // constant | linear | cosine
  int64_t warmup_steps = 0, decay_end_steps = 0;
  double warmup_epochs = -1, decay_end_epoch = -1;  // >= 0: in epochs (the release's form)
  double final_lr = -1;                             // < 0: = lr
  bool warmup_from_zero = false;
  // [log]
  int64_t log_every = 1;
  bool progress = true;
  // [checkpoint]
  int64_t ckpt_every = 1000, keep_last = 3, keep_every = 0;
  // [dist] (used under mpirun; one process ignores the strategy's communication)
  std::string shard = "no_shard";   // no_shard | shard_grad_op | full_shard | hybrid_shard
  std::string comm_dtype = "fp32";  // gradients on the wire: fp32 | bf16
  double bucket_mb = 100;           // MiB of F32 per bucket at most (distributed/bucket_plan.h)
  double timeout_s = 300;           // watchdog: a collective waiting longer aborts the job
  int64_t node_size = 0;            // ranks per node for hybrid_shard (0: ranks sharing memory)
  std::string backend = "auto";     // auto (nccl for CUDA training) | mpi | nccl

  // Fills the struct from parsed variables; range errors name the key.
  void from_variables(const boost::program_options::variables_map& vm);
  // Range checks of every key (from_variables runs it); errors name the key.
  void validate() const;
  // The effective config as a config file (every key, sections in order).
  std::string to_ini() const;
};

// Every config key, for registration on a command line.
boost::program_options::options_description train_options();
// The first "%name%" in `text` (the form of Boost.Program_options' error-message placeholders:
// "%canonical_option%", "%value%", "%invalid_line%", ...), or "". Boost substitutes them in a loop
// that never ends when the offending option or value itself contains one, so such input must be
// refused before Boost sees it.
std::string program_options_placeholder_in(const std::string& text);

// Checks a config file before it is used: a readable regular file (not a directory) whose keys
// are known and whose values are each in range and finite; errors name the file and the key.
// (Combinations of keys are checked by TrainConfig::validate once overrides are applied.)
// `extra`: the keys of another part of the config (stage 1's, train/stage1_config.h), accepted
// beside the training keys (their values are checked by their owner).
void check_config_file(const std::string& path,
                       const boost::program_options::options_description* extra = nullptr);
// Parses `path` (if not empty) and `args` overrides; throws rae::Error naming the key/file.
// With `extra`, those keys are accepted too and every parsed value lands in *extra_vm.
TrainConfig parse_train_config(const std::string& path, const std::vector<std::string>& overrides,
                               const boost::program_options::options_description* extra = nullptr,
                               boost::program_options::variables_map* extra_vm = nullptr);

}  // namespace rae::train
