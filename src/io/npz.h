// NumPy .npz files: a zip archive of .npy arrays, as np.savez / np.savez_compressed write them and
// np.load reads them. This is the hand-over format of the ADM evaluation suite (samples as `arr_0`,
// uint8 N x H x W x 3; reference batches with `mu`, `sigma`, ...).
//
// Reading memory-maps the file. Stored (uncompressed) entries are zero-copy views into the
// mapping, so a 10 GB sample batch can be read in row ranges without loading it; deflated entries
// (savez_compressed) are inflated into memory when read. ZIP64 archives (entries or archives over
// 4 GiB, as NumPy writes them) are read and written. Every error names the file and the key.
//
// Writing streams: an array's bytes may be appended in pieces (begin_array / append / end_array),
// so an array larger than memory can be written. Entries are stored uncompressed with ZIP64 extra
// fields, CRC-32 computed while streaming; the archive goes to `path.tmp` and is renamed into place
// by commit() after an fsync, so a reader never sees a partial file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::npz {

// One array's header: the NumPy dtype it maps to, and its shape (C order only).
struct ArrayInfo {
  std::string name;  // key without ".npy"
  DType dtype = DType::U8;
  Shape shape;
  bool compressed = false;  // deflated entry (savez_compressed)
  uint64_t data_bytes = 0;  // numel * element size
};

// The NumPy descr string of a dtype ("|u1", "<f4", ...); BF16 has none and is refused.
std::string numpy_descr(DType dtype);

class Reader {
 public:
  // Opens and indexes the archive; throws naming the file when it is not a readable .npz.
  explicit Reader(const std::string& path);
  const std::string& path() const { return path_; }
  const std::vector<ArrayInfo>& arrays() const { return arrays_; }
  bool contains(const std::string& name) const;
  const ArrayInfo& info(const std::string& name) const;  // throws naming file and key

  // The whole array as a CPU tensor: a zero-copy view for stored entries, an inflated copy for
  // compressed ones.
  Tensor read(const std::string& name) const;
  // Like read(), but first checks the dtype and the shape; `shape` entries of -1 match any size.
  // The error names the file, the key, the expected and the actual dtype and shape.
  Tensor read(const std::string& name, DType dtype, const Shape& shape) const;
  // Rows [begin, begin + count) along dim 0 (zero-copy for stored entries).
  Tensor read_rows(const std::string& name, int64_t begin, int64_t count) const;

 private:
  struct Entry {
    ArrayInfo info;
    uint64_t data_offset = 0;     // file offset of the array's first element (stored entries)
    uint64_t payload_offset = 0;  // file offset of the entry's (compressed) payload
    uint64_t payload_bytes = 0;   // compressed size
    uint64_t uncompressed = 0;    // size of the .npy file inside the archive
    uint32_t crc = 0;
  };
  const Entry& entry(const std::string& name) const;
  Tensor inflate_entry(const Entry& e) const;

  std::string path_;
  std::shared_ptr<void> mapping_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::vector<ArrayInfo> arrays_;
  std::vector<Entry> entries_;
};

class Writer {
 public:
  explicit Writer(const std::string& path);  // creates path.tmp
  ~Writer();                                 // removes path.tmp unless committed
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Adds a whole array (any device; copied to the host as needed).
  void add(const std::string& name, const Tensor& t);
  // Streams an array of `shape`: append() its bytes in C order, then end_array(), which checks
  // that exactly numel * element size bytes arrived.
  void begin_array(const std::string& name, DType dtype, const Shape& shape);
  void append(const void* data, size_t bytes);
  void append(const Tensor& rows);  // contiguous bytes of a CPU or device tensor of the dtype
  void end_array();
  // Writes the central directory, fsyncs, renames path.tmp to path and fsyncs the directory.
  void commit();

 private:
  struct Written {
    std::string file_name;  // "name.npy"
    uint64_t header_offset = 0, size = 0;
    uint32_t crc = 0;
  };
  void write_bytes(const void* data, size_t bytes);
  void patch_local_header(const Written& w);

  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  bool committed_ = false;
  std::vector<Written> written_;
  // The array being streamed.
  bool open_ = false;
  DType dtype_ = DType::U8;
  uint64_t expected_ = 0, received_ = 0;
  Written cur_;
};

// Convenience: one call for small archives.
void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays);

}  // namespace rae::npz
