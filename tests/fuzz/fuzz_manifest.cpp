// libFuzzer target for the latent-cache manifest parser (manifest.json): any input must load or
// throw rae::Error (a message naming the file and key); any other exception, a crash, a sanitizer
// report or an allocation over the -malloc_limit_mb bound is a finding. tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/latent_cache_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string text(reinterpret_cast<const char*>(data), size);
    rae::cache::Manifest m = rae::cache::Manifest::from_json_string(text, "fuzz.json");
    // A loaded manifest is usable: look every sample up and write it back out.
    if (m.total_samples > 0) {
      m.shard_of(0);
      m.shard_of(m.total_samples - 1);
    }
    (void)rae::cache::Manifest::from_json_string(m.to_json_string(), "fuzz-roundtrip.json");
  } catch (const rae::Error&) {
  }
  return 0;
}
