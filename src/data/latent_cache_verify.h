// Integrity check of a whole latent cache (`rae cache verify DIR`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/latent_cache_manifest.h"

namespace rae::cache {

struct VerifyReport {
  std::vector<std::string>
      problems;  // each names the shard (or manifest/stats file) and what is wrong
  std::vector<std::string> notes;  // harmless findings (left-over .tmp files, unlisted .h5 files)
  int64_t shards_checked = 0;
  int64_t samples_checked = 0;
  uint64_t bytes_checked = 0;
  bool ok() const { return problems.empty(); }
  std::string summary() const;  // multi-line, one finding per line
};

// Loads and validates the manifest, then for every shard: present, size as listed (else
// "truncated"), xxh64 of the bytes as listed (else "corrupt"), HDF5 structure, sample count, index
// and labels; and the stats file's shape and count. Never throws for a damaged cache: every problem
// goes into the report. `threads` shards are checksummed in parallel.
VerifyReport verify_cache(const std::string& dir, int threads = 2);

// The file-level check of one listed shard: present, size and xxh64 as the manifest lists them.
// Returns "" when it holds, else the problem (naming the file); `bytes` gets the bytes hashed.
std::string shard_file_problem(const std::string& dir, const ShardInfo& s,
                               uint64_t* bytes = nullptr);

}  // namespace rae::cache
