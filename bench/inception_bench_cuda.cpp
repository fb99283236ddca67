// FID Inception-v3 feature throughput on one GPU (issue 12's target: 50,000 images of 256 x 256
// at >= 2x torch-fidelity's images/s). The model is models::InceptionV3 with synthetic weights
// (same network and cost as the real one; --weights FILE loads a converted file instead). Images
// are uint8 (N, 256, 256, 3) on the HOST, as they come out of an .npz, fed in batches: each
// batch is copied to the GPU, resized to 299, and runs the whole network (pool, logits and
// spatial features), as `rae eval` will. A pool of distinct images is cycled to reach --images.
// Prints one JSON object per configuration (precision x algorithm search):
//   {"name": "inception-tf32", "ok": true, "batch": 200, "images": 50000, "images_per_s": ...,
//    "seconds": ..., "warmup_s": ..., "peak_mem_gb": ...}
// Run by tests/device/check.sh beside tests/device/torch_inception_bench.py.
// Usage: inception_bench_cuda [--images 50000] [--batch 200] [--size 256] [--pool 1000]
//                             [--precisions fp32,tf32] [--search heuristic,measure]
//                             [--weights FILE] [--device cuda|cpu]
// (--device cpu times the CPU backend: the precision and search settings do not apply there.)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/device.h"
#include "models/inception.h"
#include "ops/conv.h"
#include "ops/precision.h"
#include "tensor/cuda_memory.h"

namespace {

using namespace rae;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string json_safe(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '"' || c == '\\' || c == '\n') ? ' ' : c;
  return out.substr(0, 300);
}

// Smooth random-ish images (gradients plus noise), deterministic.
Tensor make_pool(int64_t n, int64_t size) {
  Tensor t = Tensor::empty({n, size, size, 3}, DType::U8);
  uint8_t* p = t.data<uint8_t>();
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x)
        for (int64_t c = 0; c < 3; ++c) {
          s = s * 6364136223846793005ull + 1442695040888963407ull;
          const int64_t v =
              (x * (c + 1) + y * (3 - c) + i * 37) % 256 + static_cast<int64_t>(s >> 60);
          *p++ = static_cast<uint8_t>(v > 255 ? 255 : v);
        }
  return t;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t images = 50000, batch = 200, size = 256, pool_n = 1000;
  std::string precisions = "fp32,tf32", searches = "heuristic,measure", weights, device = "cuda";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--images")
      images = std::stoll(v);
    else if (a == "--batch")
      batch = std::stoll(v);
    else if (a == "--size")
      size = std::stoll(v);
    else if (a == "--pool")
      pool_n = std::stoll(v);
    else if (a == "--precisions")
      precisions = v;
    else if (a == "--search")
      searches = v;
    else if (a == "--weights")
      weights = v;
    else if (a == "--device")
      device = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const Device dev = parse_device(device);
  if (dev.is_cpu()) precisions = "fp32", searches = "heuristic";
  if (dev.is_cuda() && !cuda_available()) {
    std::printf("{\"name\": \"inception\", \"ok\": false, \"error\": \"no CUDA device\"}\n");
    return 2;
  }
  pool_n = std::min(pool_n, images);
  Tensor pool = make_pool(pool_n, size);
  for (const std::string& prec : split(precisions)) {
    for (const std::string& search : split(searches)) {
      const std::string name = dev.is_cpu()
                                   ? std::string("inception-cpu")
                                   : "inception-" + prec + (search == "measure" ? "-measure" : "");
      try {
        ops::PrecisionGuard guard(ops::precision_from_name(prec));
        ops::set_conv_algo_search(search == "measure" ? ops::ConvAlgoSearch::Measure
                                                      : ops::ConvAlgoSearch::Heuristic);
        models::InceptionV3 m = weights.empty()
                                    ? models::InceptionV3::from_tensors(
                                          models::InceptionV3::synthetic_tensors(), "synthetic")
                                    : models::InceptionV3::load(weights);
        m.to(dev);
        m.set_batch_size(batch);
        // Warm-up: one full batch and the last partial batch's shape (algorithm choice, plans,
        // allocator), timed separately.
        const double w0 = now_s();
        m.forward(pool.narrow(0, 0, std::min(batch, pool_n)));
        if (images % batch) m.forward(pool.narrow(0, 0, std::min(images % batch, pool_n)));
        if (dev.is_cuda()) cudaDeviceSynchronize();
        const double warmup = now_s() - w0;
        if (dev.is_cuda()) cuda_memory::reset_peak();
        const double t0 = now_s();
        double checksum = 0;
        for (int64_t done = 0; done < images;) {
          // Chunks of whole batches from the pool (host tensors: the copy is part of the work).
          const int64_t start = done % pool_n;
          const int64_t n = std::min({images - done, pool_n - start, batch * 8});
          models::InceptionFeatures f = m.forward(pool.narrow(0, start, n));
          if (done == 0) checksum = f.pool.narrow(0, 0, 1).to(Device::cpu()).item(0);
          done += n;
        }
        if (dev.is_cuda()) cudaDeviceSynchronize();
        const double s = now_s() - t0;
        std::printf(
            "{\"name\": \"%s\", \"ok\": true, \"batch\": %lld, \"images\": %lld, \"size\": %lld, "
            "\"images_per_s\": %.2f, \"seconds\": %.3f, \"warmup_s\": %.3f, \"peak_mem_gb\": %.3f, "
            "\"pool0\": %.6f}\n",
            name.c_str(), (long long)batch, (long long)images, (long long)size, images / s, s,
            warmup, dev.is_cuda() ? cuda_memory::stats().peak_in_use / 1e9 : 0.0, checksum);
      } catch (const std::exception& e) {
        std::printf("{\"name\": \"%s\", \"ok\": false, \"error\": \"%s\"}\n", name.c_str(),
                    json_safe(e.what()).c_str());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
