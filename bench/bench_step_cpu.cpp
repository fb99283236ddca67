// One DiT^DH training step on the CPU (forward + backward + clip + AdamW + EMA): body 384 x 6
// (6 heads), head 768 x 1 (12 heads), 16 x 16 tokens of 768 channels, batch 8.
// Compare with tests/reference/bench_step_torch.py at the same thread count
// (docs/perf/step-cpu.md).
#include <benchmark/benchmark.h>

#include "diffusion/flow.h"
#include "models/dit.h"
#include "ops/elementwise.h"
#include "ops/optim.h"
#include "train/optimizer.h"

using namespace rae;

static void BM_DiTDHStep(benchmark::State& state) {
  models::DiTConfig c;
  c.name = "bench";
  c.in_channels = 768, c.grid = 16, c.num_classes = 1000;
  c.body_width = 384, c.body_depth = 6, c.body_heads = 6;
  c.head_width = 768, c.head_depth = 1, c.head_heads = 12;
  models::DiTDH m(c);
  m.init(1);
  train::AdamW adam(m.params(), 0.9, 0.95, 1e-8, 0.0);
  train::Ema ema(m.params());
  const int64_t B = 8, T = 256, C = 768;
  Tensor x = Tensor::empty({B, T, C}), labels = Tensor::empty({B}, DType::I32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.01f * static_cast<float>(i % 97);
  for (int64_t b = 0; b < B; ++b) labels.data<int32_t>()[b] = static_cast<int32_t>(b * 7);
  Tensor xt = Tensor::empty({B, T, C}), target = Tensor::empty({B, T, C});
  Tensor t = Tensor::empty({B}), y = Tensor::empty({B}, DType::I32);
  Tensor pred = Tensor::empty({B, T, C}), dpred = Tensor::empty({B, T, C});
  diffusion::FlowConfig fc;
  fc.num_classes = 1000;
  Tensor ids = Tensor::empty({B}, DType::I64), eps = Tensor::empty({B, T, C});
  for (int64_t b = 0; b < B; ++b) ids.data<int64_t>()[b] = b;
  nn::Arena arena;
  uint64_t step = 0;
  auto one_step = [&] {
    diffusion::draw_flow_batch(fc, step++, ids, labels, eps, t, y);
    ops::flow_interpolate(xt, target, x, eps, t);
    m.params().zero_grad();
    arena.reset();
    m.forward(arena, pred, xt, t, y);
    dpred.zero_();
    ops::mse_backward(dpred, pred, target, 1.0);
    m.backward(arena, dpred);
    double norm = train::global_grad_norm(m.params());
    adam.step(1e-4, ops::clip_coefficient(norm, 1.0));
    ema.update(m.params(), 0.9995);
  };
  one_step();  // warm-up: sizes the arena, touches every buffer
  for (auto _ : state) one_step();
  state.counters["params_M"] = static_cast<double>(m.params().num_params()) / 1e6;
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(B), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DiTDHStep)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

BENCHMARK_MAIN();
