// One open shard file for reading: validates its structure against the manifest, holds its
// labels and index in memory, and reads runs of consecutive latent rows. For uncompressed
// datasets (what ShardWriter and the documented h5py recipe produce) the file offsets of the data
// are looked up once at open and rows are read with pread() on a file descriptor kept open: no
// HDF5 call and no lock on the hot path, so reader threads run in parallel. Other layouts
// (compressed, big-endian) fall back to H5Dread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/latent_cache_h5.h"
#include "data/latent_cache_manifest.h"

namespace rae::cache {

enum class View : int { Plain = 0, Flip = 1 };

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

  // Reads rows [row0, row0 + count) of `view` into dst in the storage dtype (count * row_bytes).
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

  std::string path_;
  LatentLayout layout_;
  int64_t samples_ = 0;
  int fd_ = -1;
  h5::Handle file_;
  h5::Handle dsets_[2];
  h5::Handle mem_type_;
  DataMap maps_[2];
  std::vector<int32_t> labels_;
};

}  // namespace rae::cache
