// The latent cache manifest (manifest.json): what the cache holds and which shard holds what.
// The full schema is in docs/formats.md. Shards tile the global sample ids: shard k holds ids
// [first_index, first_index + samples) in order, and the shards (sorted by first_index) cover
// [0, total_samples) without gaps or overlap.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/atomic_file.h"

namespace rae::cache {

constexpr int kFormatVersion = 1;
constexpr const char* kFormatName = "rae-latent-cache";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kStatsFile = "stats.safetensors";

// How latents are stored in the shards.
enum class StorageDType { BF16, F16, F32 };
const char* storage_dtype_name(StorageDType t);                 // "bf16", "f16", "f32"
StorageDType storage_dtype_from_name(const std::string& name);  // throws naming the string
size_t storage_dtype_size(StorageDType t);

// Largest sample (H*W*C elements of one view): 2^28 elements, 1 GiB as f32. Far above any
// encoder's token grid (DINOv2-B: 196,608); a bound so that a typo such as --channels 1e12 is an
// error rather than an allocation failure (an HDF5 chunk, which holds at least one row, must also
// stay below 4 GiB).
constexpr int64_t kMaxSampleElements = int64_t{1} << 28;

// The shape and storage of every latent in a cache.
struct LatentLayout {
  int64_t grid_h = 0, grid_w = 0, channels = 0;
  StorageDType dtype = StorageDType::BF16;
  bool has_flip = false;  // shards carry `latents_flip`

  int64_t tokens() const { return grid_h * grid_w; }
  int64_t elements() const { return tokens() * channels; }  // per sample and view
  size_t row_bytes() const { return elements() * storage_dtype_size(dtype); }
  // grid_h, grid_w, channels > 0 and elements() <= kMaxSampleElements (checked without
  // overflow).
  bool in_bounds() const;
};

struct ShardInfo {
  std::string file;  // file name relative to the cache directory
  int64_t samples = 0;
  int64_t first_index = 0;  // global id of the first sample
  uint64_t bytes = 0;       // file size
  std::string checksum;     // xxh64 of the file bytes, 16 hex digits
};

struct Manifest {
  int format_version = kFormatVersion;
  LatentLayout layout;
  std::string encoder_id;            // e.g. "dinov2-b-reg", "synthetic"
  std::string encoder_weights_hash;  // hash of the encoder weights used ("" for synthetic)
  int64_t image_size = 0;            // input image resolution (0 for synthetic)
  std::string split = "train";
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // empty, or num_classes names (label order)
  int64_t total_samples = 0;
  std::string checksum_algorithm = "xxh64";
  std::string stats_file;  // "stats.safetensors" when present, else ""
  std::vector<ShardInfo> shards;

  // Reads dir/manifest.json (or a path ending in .json) and validates it. Errors name the file
  // and the offending key ("shards[3].checksum").
  static Manifest load(const std::string& dir_or_file);
  // Validates, then writes dir/manifest.json atomically (tmp file, fsync, rename).
  void save(const std::string& dir) const;
  // Checks values and the shard tiling; `where` (a file name) prefixes the messages.
  void validate(const std::string& where) const;
  // Sorts shards by first_index and sets total_samples to their sum (for writers).
  void finalize_shards();

  std::string to_json_string() const;
  static Manifest from_json_string(const std::string& text, const std::string& where);

  // The shard holding global sample `index` (binary search); throws if out of range.
  size_t shard_of(int64_t index) const;
};

// Manifests, stats and shards are published with the project's atomic writer (core/atomic_file.h).
using rae::fsync_path;
using rae::rename_durable;
using rae::write_file_atomic;

}  // namespace rae::cache
