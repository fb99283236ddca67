// Cache shards are checksummed with the project's one checksum, XXH64 (core/checksum.h); these
// names keep the cache code's spelling.
#pragma once
#include "core/checksum.h"

namespace rae::cache {
using rae::checksum_hex;
using rae::file_checksum;
using rae::kChecksumAlgorithm;
using rae::Xxh64;
using rae::xxh64;
}  // namespace rae::cache
