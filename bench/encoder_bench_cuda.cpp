// Frozen-encoder forward throughput on one GPU: the DINOv2-B-with-registers shape (random
// weights, preset "random-dinov2-b" of src/models/vit_encoder.h) at 224 px, F32 tensors with fp32,
// tf32 and bf16 GEMMs (bf16 also runs attention on cuDNN, through bf16), on random normal pixels
// (never constants: they can run faster than real data). Prints one JSON object per precision
// (images/s, peak memory). Run by tests/device/check.sh beside
// tests/device/torch_encoder_bench.py.
//   encoder_bench_cuda [--batch 256] [--iters 5] [--precisions fp32,tf32,bf16]
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/rng.h"
#include "models/vit_encoder.h"
#include "ops/precision.h"
#include "tensor/cuda_memory.h"

int main(int argc, char** argv) {
  using namespace rae;
  int64_t batch = 256;  // the target batch
  int iters = 5;
  std::string precisions = "fp32,tf32,bf16";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--batch")
      batch = std::stoll(argv[i + 1]);
    else if (a == "--iters")
      iters = std::stoi(argv[i + 1]);
    else if (a == "--precisions")
      precisions = argv[i + 1];
  }
  if (!cuda_available()) {
    std::printf("{\"name\": \"DINOv2-B-enc\", \"ok\": false, \"error\": \"no CUDA device\"}\n");
    return 2;
  }
  std::vector<std::string> precs;
  for (size_t a = 0, b; a <= precisions.size(); a = b + 1) {
    b = precisions.find(',', a);
    if (b == std::string::npos) b = precisions.size();
    if (b > a) precs.push_back(precisions.substr(a, b - a));
  }
  for (const std::string& prec : precs) {  // bf16: bf16 GEMMs, cuDNN attention
    std::string name = "DINOv2-B-enc-" + prec;
    try {
      ops::PrecisionGuard guard(ops::precision_from_name(prec));
      models::EncoderLoadOptions opts;
      opts.device = Device::cuda();
      models::VitEncoder enc = models::VitEncoder::load("random-dinov2-b", opts);
      int64_t S = enc.config().input_size;
      Tensor host = Tensor::empty({batch, 3, S, S});
      const rng::Key key{1, rng::Purpose::Test, 0, 0};
      float* h = host.data<float>();
      for (int64_t i = 0; i < host.numel(); ++i)
        h[i] = rng::normal_at(key, static_cast<uint64_t>(i));
      Tensor px = host.to(Device::cuda());
      enc.forward(px);  // warm-up (cuBLAS heuristics, allocator)
      cudaDeviceSynchronize();
      cuda_memory::reset_peak();
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) enc.forward(px);
      cudaDeviceSynchronize();
      double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
      std::printf(
          "{\"name\": \"%s\", \"ok\": true, \"batch\": %lld, \"images_per_s\": %.3f, "
          "\"ms_per_forward\": %.3f, \"peak_mem_gb\": %.3f}\n",
          name.c_str(), (long long)batch, batch / s, s * 1e3,
          cuda_memory::stats().peak_in_use / 1e9);
    } catch (const std::exception& e) {
      std::string msg;
      for (const char* c = e.what(); *c; ++c)
        msg += (*c == '"' || *c == '\\' || *c == '\n') ? ' ' : *c;
      std::printf("{\"name\": \"%s\", \"ok\": false, \"error\": \"%s\"}\n", name.c_str(),
                  msg.substr(0, 300).c_str());
    }
    std::fflush(stdout);
    cuda_memory::release_cache();
  }
  return 0;
}
