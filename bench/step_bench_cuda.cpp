// Training-step benchmark of `rae train` itself: train::Trainer::step() (flow matching with
// latent normalisation, device-side draws, forward, backward, gradient norm, clip, AdamW, EMA,
// bf16 shadows) of DiT^DH-XL and DiT^DH-S on 16x16x768 latents from an in-memory synthetic
// stream (materialised once, so the step never waits for the host RNG; the batch still goes
// host -> device every step, as from the cache reader). Prints one JSON object per model and,
// with --json PATH, writes them as a JSON array. FLOPs per image are analytic
// (flops_per_image(); docs/perf/device/README.md).
// --device cpu --models tiny runs the same code on the CPU (a wiring check for tests).
// --profile: after the timed steps, one more step with every op call timed by the op layer's
// hook (ops/profile.h: CUDA events per call); prints a table (op, calls, ms, % of the step,
// TFLOP/s of GEMMs and attention) on stderr and a JSON line "<name>-profile" on stdout.
// --cuda-graph: train.cuda_graph = true (the step replayed as a CUDA graph; not with --profile,
// whose per-op events cannot be taken inside a graph).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "models/registry.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "train/trainer.h"
#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_memory.h"
#endif

namespace rae {
namespace {

using json = nlohmann::json;

struct Options {
  std::string models = "XL,S", device = "cuda", precision = "bf16", json_path, suffix;
  std::string batches_xl = "256,128,64", batches_s = "256,128", batches_tiny = "8";
  int warmup = 2, steps = 5;
  double peak = 989.0;  // H100/H200 dense bf16 TFLOP/s
  bool profile = false, cuda_graph = false;
};

int64_t swiglu_hidden(double w) {
  return static_cast<int64_t>(2.0 / 3.0 * static_cast<double>(static_cast<int64_t>(w * 4)));
}

// Analytic forward FLOPs per image of a DiT^DH config (2 per multiply-add): every Linear
// (2 * T * in * out, per sample for the body's adaLN and the time MLP), attention 4 * T^2 * width
// per block (QK^T and PV); elementwise work is not counted. Training = 3x forward.
double flops_per_image(const json& c) {
  const double T = static_cast<double>(c.at("grid").get<int64_t>() * c.at("grid").get<int64_t>());
  const double C = c.at("in_channels").get<double>(), F = c.at("fourier_size").get<double>();
  const double wb = c.at("body_width").get<double>(), wh = c.at("head_width").get<double>();
  auto block = [&](double w, double tokens_for_ada) {
    const double h = static_cast<double>(swiglu_hidden(w));
    return 2 * T * (3 * w * w + w * w + w * 2 * h + h * w) + 2 * tokens_for_ada * w * 6 * w +
           4 * T * T * w;
  };
  double f = c.at("body_depth").get<double>() * block(wb, 1) +
             c.at("head_depth").get<double>() * block(wh, T);
  f += 2 * T * C * wb;                 // s_embedder
  f += 2 * (2.0 * F * wb + wb * wb);   // time MLP (per sample)
  if (wb != wh) f += 2 * T * wb * wh;  // s_projector
  f += 2 * T * C * wh;                 // x_embedder
  f += 2 * T * wh * 2 * wh;            // final adaLN (per token)
  f += 2 * T * wh * C;                 // final linear
  return f;
}

void sync(const Device& d) {
#ifdef RAE_WITH_CUDA
  if (d.is_cuda())
    RAE_CHECK(cudaDeviceSynchronize() == cudaSuccess,
              "CUDA error: ", cudaGetErrorString(cudaGetLastError()));
#endif
  (void)d;
}

// One more step with every op timed (ops/profile.h); the table goes to stderr, the rows into
// the returned JSON (ms, calls, share of the step, TFLOP/s where the op declared FLOPs).
json profile_step(train::Trainer& trainer, const Device& dev, const json& r, const Options& o) {
  sync(dev);
  ops::profile::start();
  const auto t0 = std::chrono::steady_clock::now();
  trainer.step();
  sync(dev);
  const double step_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<ops::profile::OpTime> ops = ops::profile::stop();
  std::fprintf(stderr, "\n[step_bench] profile of one %s step (batch %lld, %s):\n%s",
               r["name"].get<std::string>().c_str(),
               static_cast<long long>(r["batch"].get<int64_t>()), o.precision.c_str(),
               ops::profile::format_table(ops, step_ms).c_str());
  json rows = json::array();
  double in_ops = 0;
  for (const auto& t : ops) {
    in_ops += t.ms;
    json row = {{"op", t.op}, {"calls", t.calls}, {"ms", t.ms}, {"share", t.ms / step_ms}};
    if (t.flops > 0 && t.ms > 0) row["tflops"] = t.flops / (t.ms * 1e9);
    rows.push_back(row);
  }
  return {{"step_ms", step_ms}, {"outside_ops_ms", step_ms - in_ops}, {"ops", rows}};
}

json run_model(const std::string& model, int64_t B, const Options& o) {
  train::TrainConfig c;
  c.preset = model == "tiny" ? "DiTDH-tiny" : "DiTDH-" + model;
  c.device = o.device;
  c.precision = o.precision;
  c.global_batch_size = B;
  c.steps = 1 << 30;
  c.progress = false;
  c.cuda_graph = o.cuda_graph;
  c.validate();
  const bool tiny = model == "tiny";
  // One epoch of B samples: every step is a full batch; materialised once.
  train::SyntheticStream data(B, tiny ? 8 : 16, tiny ? 32 : 768, tiny ? 10 : 1000, 7, 0.5, true);
  const Device dev = parse_device(o.device);
  train::Trainer trainer(c, data, "");
  json r = {
      {"name", c.preset + o.suffix}, {"batch", B},
      {"precision", o.precision},    {"attention", ops::attention_impl_name(ops::attention_impl())},
      {"cuda_graph", o.cuda_graph},  {"params", trainer.model().module->params().num_params()}};
  double loss = 0;
  for (int i = 0; i < o.warmup; ++i) loss = trainer.step().loss;
  sync(dev);
#ifdef RAE_WITH_CUDA
  if (dev.is_cuda()) cuda_memory::reset_peak();
#endif
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.steps; ++i) loss = trainer.step().loss;
  sync(dev);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
      o.steps;
  const double gflop = 3 * flops_per_image(trainer.model().spec.config) / 1e9;
  const double ips = static_cast<double>(B) / (ms / 1000.0);
  r["steps"] = o.steps;
  r["ms_per_step"] = ms;
  r["images_per_s"] = ips;
  r["gflop_per_image"] = gflop;
  r["tflops"] = ips * gflop / 1e3;
  r["mfu"] = ips * gflop / 1e3 / o.peak;
  r["loss"] = loss;
#ifdef RAE_WITH_CUDA
  if (dev.is_cuda()) r["peak_mem_gb"] = static_cast<double>(cuda_memory::stats().peak_in_use) / 1e9;
#endif
  r["ok"] = std::isfinite(loss);
  if (o.profile) r["profile"] = profile_step(trainer, dev, r, o);
  return r;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

int main_impl(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      RAE_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "--models")
      o.models = next();
    else if (a == "--device")
      o.device = next();
    else if (a == "--precision")
      o.precision = next();
    else if (a == "--batches-xl")
      o.batches_xl = next();
    else if (a == "--batches-s")
      o.batches_s = next();
    else if (a == "--batches-tiny")
      o.batches_tiny = next();
    else if (a == "--steps")
      o.steps = std::stoi(next());
    else if (a == "--warmup")
      o.warmup = std::stoi(next());
    else if (a == "--peak-tflops")
      o.peak = std::stod(next());
    else if (a == "--json")
      o.json_path = next();
    else if (a == "--attention")
      ops::set_attention_impl(ops::attention_impl_from_name(next()));
    else if (a == "--suffix")
      o.suffix = next();
    else if (a == "--profile")
      o.profile = true;
    else if (a == "--cuda-graph")
      o.cuda_graph = true;
    else if (a == "--flops") {  // the analytic FLOPs, no GPU needed
      for (auto m : {"DiTDH-XL", "DiTDH-S"}) {
        json c = models::model_preset(m).config;
        c["in_channels"] = 768, c["grid"] = 16;
        std::printf("%s: forward %.1f GFLOP/image, training %.1f GFLOP/image\n", m,
                    flops_per_image(c) / 1e9, 3 * flops_per_image(c) / 1e9);
      }
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "step_bench_cuda: train::Trainer::step() of DiT^DH on one device.\n"
          "  --models XL,S           models (XL, S, B, L; tiny = DiTDH-tiny on 8x8x32)\n"
          "  --device cuda|cpu       training device (default cuda)\n"
          "  --precision bf16        fp32 | tf32 | bf16 (train.precision)\n"
          "  --batches-xl 256,128    batches to try for XL, the first that fits is used\n"
          "  --batches-s 256,128     the same for S (and for B and L)\n"
          "  --steps N --warmup N    timed and warm-up steps (default 5, 2)\n"
          "  --peak-tflops X         peak TFLOP/s for the MFU (default 989)\n"
          "  --profile               one more step timed per op (table on stderr)\n"
          "  --cuda-graph            train.cuda_graph = true (not with --profile)\n"
          "  --attention auto|flash|gemm|cudnn, --suffix S, --json PATH, --flops\n");
      return 0;
    } else {
      RAE_THROW("unknown option '", a, "' (see --help)");
    }
  }
  RAE_CHECK(!(o.profile && o.cuda_graph),
            "--profile and --cuda-graph exclude each other (the "
            "per-op events cannot be taken inside a CUDA graph)");
  if (parse_device(o.device).is_cuda() && !cuda_available()) {
    std::printf("{\"error\": \"no CUDA device\"}\n");
    std::fprintf(stderr,
                 "step_bench_cuda: no CUDA device found (use --device cpu --models tiny)\n");
    return 2;
  }
  std::string card = "cpu";
#ifdef RAE_WITH_CUDA
  if (parse_device(o.device).is_cuda()) {
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    card = prop.name;
  }
#endif
  std::vector<json> out;
  for (const std::string& m : split(o.models)) {
    json best = {{"name", "DiTDH-" + m + o.suffix}, {"ok", false}};
    const std::string batches = m == "XL"     ? o.batches_xl
                                : m == "tiny" ? o.batches_tiny
                                              : o.batches_s;
    for (const std::string& bs : split(batches)) {  // the largest batch that fits
      const int64_t B = std::stoll(bs);
      try {
        std::fprintf(stderr, "[step_bench] %s batch %lld (%s) ...\n", m.c_str(),
                     static_cast<long long>(B), o.precision.c_str());
        best = run_model(m, B, o);
        break;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[step_bench] %s batch %lld failed: %s\n", m.c_str(),
                     static_cast<long long>(B), e.what());
        best["batch"] = B;
        best["error"] = e.what();
#ifdef RAE_WITH_CUDA
        if (parse_device(o.device).is_cuda()) {
          (void)cudaGetLastError();
          cuda_memory::release_cache();
          if (cudaDeviceSynchronize() != cudaSuccess) break;  // a sticky error: stop here
        }
#endif
      }
    }
#ifdef RAE_WITH_CUDA
    if (parse_device(o.device).is_cuda()) cuda_memory::release_cache();
#endif
    best["card"] = card;
    std::printf("%s\n", best.dump().c_str());
    std::fflush(stdout);
    out.push_back(best);
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << json(out).dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace rae

int main(int argc, char** argv) {
  try {
    return rae::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "step_bench_cuda: %s\n", e.what());
    return 1;
  }
}
