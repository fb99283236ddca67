// One open shard file for reading: validates its structure against the manifest, holds its
// labels and index in memory, and reads runs of consecutive latent rows. For uncompressed
// datasets (what ShardWriter and the documented h5py recipe produce) the file offsets of the data
// are looked up once at open and rows are read with pread() on a file descriptor kept open: no
// HDF5 call and no lock on the hot path, so reader threads run in parallel. Other layouts
// (compressed, big-endian) fall back to H5Dread.
//
// Integrity. Shards written by ShardWriter carry the XXH64 of every stored row
// (`latents_xxh64`, `latents_flip_xxh64`) and of the labels (attribute `xxh64` of `labels`);
// read_rows() checks each row the first time this ShardFile returns it, in the calling (reader)
// thread, and throws naming the shard, dataset and row on a mismatch, so a corrupt shard is never
// trained on. Checking once costs one xxh64 pass over the cache per process (training reads
// every row once per epoch; later epochs pay nothing). Shards without
// row checksums (written by other tools, or before they existed) report has_row_checksums() ==
// false; their readers verify the whole file against the manifest instead (LatentCacheReader
// does so when it opens the cache).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/latent_cache_h5.h"
#include "data/latent_cache_manifest.h"

namespace rae::cache {

enum class View : int { Plain = 0, Flip = 1 };

constexpr const char* kViewDatasets[2] = {"latents", "latents_flip"};
// Per-row XXH64 (seed 0) of each view's stored bytes: (N) uint64.
constexpr const char* kRowChecksumDatasets[2] = {"latents_xxh64", "latents_flip_xxh64"};
// String attribute of `labels`: XXH64 of its int32 little-endian bytes, 16 hex digits.
constexpr const char* kChecksumAttr = "xxh64";

class ShardFile {
 public:
  // Opens `dir/info.file`, checks the file size, datasets, shapes, dtypes and that `index` holds
  // first_index, first_index + 1, ... and labels are in [0, num_classes). Errors name the file
  // and dataset. direct_io=false forces H5Dread (tests compare both paths).
  ShardFile(const std::string& dir, const Manifest& manifest, const ShardInfo& info,
            bool direct_io = true);
  ~ShardFile();
  ShardFile(const ShardFile&) = delete;
  ShardFile& operator=(const ShardFile&) = delete;

  const std::string& path() const { return path_; }
  int64_t samples() const { return samples_; }
  const std::vector<int32_t>& labels() const { return labels_; }
  bool direct(View v) const { return maps_[static_cast<int>(v)].kind != MapKind::Hdf5; }
  bool has_row_checksums() const { return !row_sums_[0].empty(); }

  // Reads rows [row0, row0 + count) of `view` into dst in the storage dtype (count * row_bytes),
  // checking each row against its checksum (first read of the row) when the shard has them.
  // Thread-safe.
  void read_rows(View view, int64_t row0, int64_t count, void* dst) const;

 private:
  enum class MapKind { None, Contiguous, Chunked, Hdf5 };
  struct DataMap {
    MapKind kind = MapKind::None;
    uint64_t offset = 0;               // Contiguous: file offset of row 0
    int64_t chunk_rows = 0;            // Chunked: rows per chunk
    std::vector<uint64_t> chunk_addr;  // Chunked: file offset of each chunk
  };
  void map_dataset(View view, const char* name, bool direct_io);
  void pread_all(void* dst, size_t bytes, uint64_t offset, const char* dname) const;
  void read_raw(int view, int64_t row0, int64_t count, void* dst) const;
  void check_rows(int view, int64_t row0, int64_t count, const void* rows) const;
  void load_checksums();

  std::string path_;
  LatentLayout layout_;
  int64_t samples_ = 0;
  int fd_ = -1;
  h5::Handle file_;
  h5::Handle dsets_[2];
  h5::Handle mem_type_;
  DataMap maps_[2];
  std::vector<int32_t> labels_;
  std::vector<uint64_t> row_sums_[2];  // per view; empty without row checksums
  // Rows already checked, per view (two threads may both check a row: harmless).
  std::unique_ptr<std::atomic<uint8_t>[]> checked_[2];
  int64_t first_index_ = 0;
};

}  // namespace rae::cache
