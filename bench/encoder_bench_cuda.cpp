// Frozen-encoder forward throughput on one GPU: the DINOv2-B-with-registers shape (random
// weights, preset "random-dinov2-b" of src/models/vit_encoder.h) at 224 px, F32 tensors with fp32,
// tf32 and bf16 GEMMs (bf16 also runs attention on cuDNN, through bf16). Prints one JSON object per precision (images/s, peak memory). Built only when
// the encoder is in the tree; run by tests/device/check.sh beside
// tests/device/torch_encoder_bench.py.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/device.h"
#include "models/vit_encoder.h"
#include "ops/precision.h"
#include "tensor/cuda_memory.h"

int main(int argc, char** argv) {
  using namespace rae;
  int64_t batch = 64;
  int iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--batch")
      batch = std::stoll(argv[i + 1]);
    else if (a == "--iters")
      iters = std::stoi(argv[i + 1]);
  }
  if (!cuda_available()) {
    std::printf("{\"name\": \"DINOv2-B-enc\", \"ok\": false, \"error\": \"no CUDA device\"}\n");
    return 2;
  }
  for (const char* prec : {"fp32", "tf32", "bf16"}) {  // bf16: bf16 GEMMs, cuDNN attention
    std::string name = std::string("DINOv2-B-enc-") + prec;
    try {
      ops::PrecisionGuard guard(ops::precision_from_name(prec));
      models::EncoderLoadOptions opts;
      opts.device = Device::cuda();
      models::VitEncoder enc = models::VitEncoder::load("random-dinov2-b", opts);
      int64_t S = enc.config().input_size;
      Tensor px = Tensor::full({batch, 3, S, S}, 0.1, DType::F32, Device::cuda());
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
