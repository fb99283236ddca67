// XXH64 (seed 0) file checksums for cache shards. XXH64 runs at memory speed, so verifying a
// multi-hundred-GB cache is bounded by the disk, not the hash; the value is written as the
// canonical 16 lower-case hex digits (big-endian), the form `xxhsum` and python-xxhash print.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace rae::cache {

constexpr const char* kChecksumAlgorithm = "xxh64";

// Streaming XXH64: update() any number of times, then digest() (does not modify the state).
class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t buffered_ = 0;
};

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
std::string checksum_hex(uint64_t h);  // 16 hex digits

// Checksum of a whole file's bytes; `bytes_out` gets its size. Throws naming the file.
std::string file_checksum(const std::string& path, uint64_t* bytes_out = nullptr);

}  // namespace rae::cache
