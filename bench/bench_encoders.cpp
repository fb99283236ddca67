// Encoder forward throughput on the CPU (docs/perf/encoders-cpu.md): the tiny-random preset and
// the DINOv2-B shape with random weights, at a fixed oneTBB thread count (the PyTorch side is
// tests/reference/bench_encoder_torch.py with the same threads).
//   build/bench/bench_encoders --benchmark_filter=... ; RAE_BENCH_THREADS=N (default 2)
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <cstdlib>
#include <memory>

#include "models/vit_encoder.h"

using namespace rae;

namespace {

int bench_threads() {
  const char* s = std::getenv("RAE_BENCH_THREADS");
  return s ? std::atoi(s) : 2;
}

void BM_EncoderForward(benchmark::State& state, const char* preset) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, bench_threads());
  static std::map<std::string, std::unique_ptr<models::VitEncoder>> cache;
  auto& enc = cache[preset];
  if (!enc) enc = std::make_unique<models::VitEncoder>(models::VitEncoder::load(preset));
  const int64_t B = state.range(0);
  Tensor x = Tensor::zeros({B, 3, 224, 224});
  for (auto _ : state) {
    Tensor f = enc->forward(x);
    benchmark::DoNotOptimize(f.raw());
  }
  state.counters["img/s"] =
      benchmark::Counter(static_cast<double>(B * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["threads"] = bench_threads();
}

}  // namespace

BENCHMARK_CAPTURE(BM_EncoderForward, tiny_random, "tiny-random")
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_EncoderForward, dinov2_b, "random-dinov2-b")
    ->Arg(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

BENCHMARK_MAIN();
