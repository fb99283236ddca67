// libFuzzer target for the safetensors parser: any input must parse or throw rae::Error.
// Built by tests/io/tests.cmake with clang (-fsanitize=fuzzer,address,undefined) when clang++ is
// found; the ctest entry safetensors_libfuzzer runs it for a bounded time. By hand:
//   build/fuzz_safetensors -dict=tests/io/safetensors.dict build/fuzz-corpus tests/goldens/io
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    rae::safetensors::File f = rae::safetensors::parse(data, size, "fuzz");
    // Read every byte of every tensor so that a view outside the buffer trips ASan.
    volatile uint32_t sum = 0;
    for (const auto& name : f.names) {
      rae::Tensor t = f.get(name);
      const unsigned char* p = static_cast<const unsigned char*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sum = sum + p[i];
    }
  } catch (const rae::Error&) {
    // Rejected input: the expected outcome for most mutations. Anything else escapes and crashes.
  }
  return 0;
}
