// CPU op microbenchmarks at DiT^DH-S shapes (16x16 tokens, width 384, 6 heads of 64), matched
// one to one by tests/reference/bench_ops_torch.py (same names, shapes and thread count);
// bench/compare_cpu_ops.sh runs both and prints the ratios (docs/perf/cpu-ops.md).
//
// Threads: RAE_BENCH_THREADS (default: all cores) caps oneTBB, which runs every parallel loop,
// the GEMM tiles included (the BLAS library itself runs single-threaded: src/ops/cpu/blas.h).
//   build/bench/bench_ops --benchmark_min_time=0.2 --benchmark_filter=gemm
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "core/rng.h"
#include "ops/attention.h"
#include "ops/cpu/blas.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "tensor/tensor.h"

namespace {

using rae::DType;
using rae::Shape;
using rae::Tensor;

// Deterministic N(0, std) data, F32.
Tensor randn(const Shape& shape, uint64_t stream, double std = 1.0) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  rae::rng::Key key{1234, rae::rng::Purpose::Test, stream, 0};
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>(std * rae::rng::normal_at(key, i));
  return t;
}

// GEMM as the linear layers use it: C (M, N) = A (M, K) @ W (N, K)^T.
void BM_gemm(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  Tensor A = randn({M, K}, 1), W = randn({N, K}, 2, 0.05), C = Tensor::empty({M, N});
  for (auto _ : state) {
    rae::ops::matmul(C, A, W, false, true);
    benchmark::DoNotOptimize(C.raw());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}

constexpr int64_t kB = 8, kT = 256, kH = 6, kD = 64, kC = 384;

void BM_attention_fwd(benchmark::State& state) {
  Tensor qkv = randn({kB, kT, 3, kH, kD}, 3);
  Tensor out = Tensor::empty({kB, kT, kH, kD}), lse = Tensor::empty({kB, kH, kT});
  const double scale = 1.0 / std::sqrt(static_cast<double>(kD));
  for (auto _ : state) {
    rae::ops::attention_forward(out, lse, qkv, scale);
    benchmark::DoNotOptimize(out.raw());
  }
  // QK^T and PV: 2 GEMMs of 2*T*T*D flops per (b, h).
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * kB * kH * kT * kT * kD,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_attention_fwdbwd(benchmark::State& state) {
  Tensor qkv = randn({kB, kT, 3, kH, kD}, 3), dout = randn({kB, kT, kH, kD}, 4);
  Tensor out = Tensor::empty({kB, kT, kH, kD}), lse = Tensor::empty({kB, kH, kT});
  Tensor dqkv = Tensor::empty({kB, kT, 3, kH, kD});
  const double scale = 1.0 / std::sqrt(static_cast<double>(kD));
  for (auto _ : state) {
    rae::ops::attention_forward(out, lse, qkv, scale);
    dqkv.zero_();  // the backward accumulates; a fresh gradient as in a training step
    rae::ops::attention_backward(dqkv, dout, qkv, out, lse, scale);
    benchmark::DoNotOptimize(dqkv.raw());
  }
  // forward 2 GEMMs + backward 5 (recomputed QK^T, dO V^T, dV, dQ, dK).
  state.counters["GFLOP/s"] = benchmark::Counter(14.0 * kB * kH * kT * kT * kD,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// Per-sample adaLN on RMSNorm output, as in the DiT^DH body blocks.
void BM_rmsnorm_modulate_fwd(benchmark::State& state) {
  Tensor x = randn({kB, kT, kC}, 5), w = randn({kC}, 6), shift = randn({kB, kC}, 7),
         scale = randn({kB, kC}, 8), out = Tensor::empty({kB, kT, kC}),
         rstd = Tensor::empty({kB * kT});
  for (auto _ : state) {
    rae::ops::rmsnorm_modulate_forward(out, rstd, x, w, shift, scale, 1e-6);
    benchmark::DoNotOptimize(out.raw());
  }
  state.counters["GB/s"] =
      benchmark::Counter(2.0 * 4 * kB * kT * kC, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1024);
}

void BM_rmsnorm_modulate_fwdbwd(benchmark::State& state) {
  Tensor x = randn({kB, kT, kC}, 5), w = randn({kC}, 6), shift = randn({kB, kC}, 7),
         scale = randn({kB, kC}, 8), dout = randn({kB, kT, kC}, 9);
  Tensor out = Tensor::empty({kB, kT, kC}), rstd = Tensor::empty({kB * kT});
  Tensor dx = Tensor::empty({kB, kT, kC}), dw = Tensor::empty({kC}),
         dshift = Tensor::empty({kB, kC}), dscale = Tensor::empty({kB, kC});
  for (auto _ : state) {
    rae::ops::rmsnorm_modulate_forward(out, rstd, x, w, shift, scale, 1e-6);
    dx.zero_();
    dw.zero_();
    dshift.zero_();
    dscale.zero_();
    rae::ops::rmsnorm_modulate_backward(dx, dw, dshift, dscale, dout, x, w, scale, rstd);
    benchmark::DoNotOptimize(dx.raw());
  }
}

// One AdamW step over 10M F32 parameters (one flat buffer, as the trainer keeps them).
void BM_adamw(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor p = randn({n}, 10), g = randn({n}, 11, 0.01), m = Tensor::zeros({n}),
         v = Tensor::zeros({n});
  rae::ops::AdamWParams hp;
  hp.lr = 1e-4;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.weight_decay = 0.01;
  for (auto _ : state) {
    rae::ops::adamw_step(p, g, m, v, hp);
    ++hp.step;
    benchmark::ClobberMemory();
  }
  // reads p, g, m, v and writes p, m, v: 7 * 4 bytes per parameter
  state.counters["GB/s"] = benchmark::Counter(
      28.0 * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
}

// Names match bench_ops_torch.py.
BENCHMARK(BM_gemm)
    ->Name("gemm_2048x384x1152")
    ->Args({2048, 384, 1152})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_gemm)
    ->Name("gemm_2048x384x1024")
    ->Args({2048, 384, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_gemm)
    ->Name("gemm_2048x1024x384")
    ->Args({2048, 1024, 384})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_attention_fwd)
    ->Name("attention_fwd_B8_T256_H6_D64")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_attention_fwdbwd)
    ->Name("attention_fwdbwd_B8_T256_H6_D64")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_rmsnorm_modulate_fwd)
    ->Name("rmsnorm_modulate_fwd_B8_T256_C384")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_rmsnorm_modulate_fwdbwd)
    ->Name("rmsnorm_modulate_fwdbwd_B8_T256_C384")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_adamw)
    ->Name("adamw_10M")
    ->Arg(10'000'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* s = std::getenv("RAE_BENCH_THREADS")) threads = std::atoi(s);
  if (threads < 1) threads = 1;
  tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, threads);
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("blas", rae::ops::cpu::blas_summary());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
