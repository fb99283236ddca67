// One training step on the CPU as `rae train` runs it: train::Trainer::step() (flow matching:
// normalisation, draws, forward, backward, gradient norm, clip, AdamW, EMA) on an in-memory
// synthetic stream. Model: DiT^DH body 384 x 6 (6 heads), head 768 x 1 (12 heads), 16 x 16
// tokens of 768 channels, batch 8. Compare with tests/reference/bench_step_torch.py at the same
// thread count (docs/perf/step-cpu.md).
#include <benchmark/benchmark.h>

#include "train/config.h"
#include "train/data_source.h"
#include "train/trainer.h"

using namespace rae;

static void BM_DiTDHStep(benchmark::State& state) {
  train::TrainConfig c;
  c.preset = "DiTDH-S";
  c.model_overrides = R"({"body_depth": 6, "head_width": 768, "head_depth": 1, "head_heads": 12})";
  c.global_batch_size = 8;
  c.lr = 1e-4;
  c.progress = false;
  train::SyntheticStream data(64, 16, 768, 1000, 7, 0.5, /*materialize=*/true);
  train::Trainer trainer(c, data, "");
  trainer.step();  // warm-up: sizes the arena, touches every buffer
  for (auto _ : state) trainer.step();
  state.counters["params_M"] =
      static_cast<double>(trainer.model().module->params().num_params()) / 1e6;
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(c.global_batch_size),
                                                   benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DiTDHStep)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

BENCHMARK_MAIN();
