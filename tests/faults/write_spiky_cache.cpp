// A synthetic latent cache (rae synth-cache's) in which some samples are multiplied by a
// factor: data that is wrong but passes every checksum, since it is written that way (the
// loss-spike case of tests/faults/faults.sh).
//   write_spiky_cache OUT SAMPLES GRID CHANNELS CLASSES SHARD_SIZE SCALE INDEX...
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "data/latent_cache_synth.h"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: %s OUT SAMPLES GRID CHANNELS CLASSES SHARD_SIZE SCALE INDEX...\n",
                 argv[0]);
    return 2;
  }
  rae::cache::SynthOptions o;
  o.out = argv[1];
  o.samples = std::atoll(argv[2]);
  o.grid_h = o.grid_w = std::atoll(argv[3]);
  o.channels = std::atoll(argv[4]);
  o.classes = std::atoll(argv[5]);
  o.shard_size = std::atoll(argv[6]);
  const float scale = std::strtof(argv[7], nullptr);
  std::set<int64_t> spiky;
  for (int i = 8; i < argc; ++i) spiky.insert(std::atoll(argv[i]));
  o.alter = [&](int64_t index, float* x, int64_t n) {
    if (!spiky.count(index)) return;
    for (int64_t k = 0; k < n; ++k) x[k] *= scale;
  };
  try {
    rae::cache::write_synthetic_cache(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_spiky_cache: %s\n", e.what());
    return 1;
  }
  std::printf("wrote %s: %lld samples, %zu multiplied by %g\n", o.out.c_str(),
              static_cast<long long>(o.samples), spiky.size(), static_cast<double>(scale));
  return 0;
}
