// The project's one checksum: XXH64 (seed 0). It runs at memory speed, so verifying a
// multi-hundred-GB cache or checkpoint is bounded by the disk, not the hash. Values are written
// as the canonical 16 lower-case hex digits (big-endian), the form `xxhsum` and python-xxhash
// print. Every writer that records a checksum (cache shards and manifests, checkpoints, the
// distributed config check) uses this file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rae {

constexpr const char* kChecksumAlgorithm = "xxh64";

// Streaming XXH64: update() any number of times, then digest() (does not modify the state).
class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t buffered_ = 0;
};

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t xxh64(std::string_view s) {
  return xxh64(s.data(), s.size());
}
std::string checksum_hex(uint64_t h);  // 16 hex digits

// Checksum (hex) of a whole file's bytes; `bytes_out` gets its size. Throws naming the file.
std::string file_checksum(const std::string& path, uint64_t* bytes_out = nullptr);

}  // namespace rae
