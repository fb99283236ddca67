#include "data/latent_cache_shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "data/latent_cache_checksum.h"

namespace rae::cache {

using h5::Handle;

namespace {
// Direct reads are checked in pieces of about this size, each hashed while it is still in cache.
constexpr size_t kVerifyPieceBytes = 256 << 10;
}  // namespace

ShardFile::ShardFile(const std::string& dir, const Manifest& m, const ShardInfo& info,
                     bool direct_io)
    : path_((std::filesystem::path(dir) / info.file).string()),
      layout_(m.layout),
      samples_(info.samples),
      first_index_(info.first_index) {
  h5::quiet_errors();
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0)
    RAE_THROW("shard '", path_, "' listed in the manifest is missing: ", std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) != info.bytes)
    RAE_THROW("shard '", path_, "' is ", st.st_size, " bytes but the manifest says ", info.bytes,
              " (truncated or replaced)");
  file_ = Handle(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), Handle::Kind::File);
  if (!file_.valid()) h5::fail("cannot open shard", path_);
  if (h5::has_attr(file_, "dtype")) {
    std::string dt = h5::read_string_attr(file_, "dtype", path_, "/");
    RAE_CHECK(dt == storage_dtype_name(layout_.dtype), "shard '", path_, "' has dtype '", dt,
              "' but the manifest says '", storage_dtype_name(layout_.dtype), "'");
  }

  const int views = layout_.has_flip ? 2 : 1;
  for (int v = 0; v < views; ++v) {
    const char* name = kViewDatasets[v];
    dsets_[v] = Handle(H5Dopen2(file_, name, H5P_DEFAULT), Handle::Kind::Dataset);
    if (!dsets_[v].valid()) h5::fail("missing dataset", path_, name);
    auto dims = h5::dataset_dims(dsets_[v], path_, name);
    if (dims.size() != 3 || static_cast<int64_t>(dims[0]) != samples_ ||
        static_cast<int64_t>(dims[1]) != layout_.tokens() ||
        static_cast<int64_t>(dims[2]) != layout_.channels)
      RAE_THROW("shard '", path_, "' dataset '", name, "' has shape (",
                dims.size() > 0 ? std::to_string(dims[0]) : "",
                dims.size() > 1 ? ", " + std::to_string(dims[1]) : "",
                dims.size() > 2 ? ", " + std::to_string(dims[2]) : "", "), expected (", samples_,
                ", ", layout_.tokens(), ", ", layout_.channels, ")");
    Handle ftype(H5Dget_type(dsets_[v]), Handle::Kind::Datatype);
    H5T_class_t cls = H5Tget_class(ftype);
    size_t size = H5Tget_size(ftype);
    std::string attr = h5::has_attr(dsets_[v], "dtype")
                           ? h5::read_string_attr(dsets_[v], "dtype", path_, name)
                           : "";
    bool ok = false;
    switch (layout_.dtype) {
      case StorageDType::BF16:
        ok = cls == H5T_INTEGER && size == 2 && attr == "bf16";
        break;
      case StorageDType::F16:
        ok = (cls == H5T_FLOAT && size == 2) || (cls == H5T_INTEGER && size == 2 && attr == "f16");
        break;
      case StorageDType::F32:
        ok = cls == H5T_FLOAT && size == 4;
        break;
    }
    if (!ok)
      RAE_THROW("shard '", path_, "' dataset '", name, "' does not store ",
                storage_dtype_name(layout_.dtype), " (HDF5 class ", static_cast<int>(cls), ", ",
                size, " bytes, dtype attribute '", attr, "')");
    if (cls == H5T_INTEGER) {
      mem_type_ = Handle(H5Tcopy(H5T_NATIVE_UINT16), Handle::Kind::Datatype);
    } else if (size == 2) {
      mem_type_ = h5::make_f16_type();
    } else {
      mem_type_ = Handle(H5Tcopy(H5T_NATIVE_FLOAT), Handle::Kind::Datatype);
    }
    bool little = H5Tget_order(ftype) == H5T_ORDER_LE;
    map_dataset(static_cast<View>(v), name, direct_io && little);
  }

  // labels and index: small, read whole.
  auto read_1d = [&](const char* name, hid_t mtype, void* dst, H5T_class_t want) {
    Handle d(H5Dopen2(file_, name, H5P_DEFAULT), Handle::Kind::Dataset);
    if (!d.valid()) h5::fail("missing dataset", path_, name);
    auto dims = h5::dataset_dims(d, path_, name);
    if (dims.size() != 1 || static_cast<int64_t>(dims[0]) != samples_)
      RAE_THROW("shard '", path_, "' dataset '", name, "' must have shape (", samples_, ")");
    Handle ftype(H5Dget_type(d), Handle::Kind::Datatype);
    if (H5Tget_class(ftype) != want)
      RAE_THROW("shard '", path_, "' dataset '", name, "' must hold integers");
    if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
      h5::fail("cannot read", path_, name);
  };
  labels_.resize(samples_);
  read_1d("labels", H5T_NATIVE_INT32, labels_.data(), H5T_INTEGER);
  std::vector<int64_t> index(samples_);
  read_1d("index", H5T_NATIVE_INT64, index.data(), H5T_INTEGER);
  for (int64_t i = 0; i < samples_; ++i) {
    if (index[i] != info.first_index + i)
      RAE_THROW("shard '", path_, "' dataset 'index' row ", i, " is ", index[i], ", expected ",
                info.first_index + i, " (first_index + row)");
    if (labels_[i] < 0 || (m.num_classes > 0 && labels_[i] >= m.num_classes))
      RAE_THROW("shard '", path_, "' dataset 'labels' row ", i, " is ", labels_[i],
                ", outside [0, ", m.num_classes, ")");
  }

  load_checksums();

  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) RAE_THROW("cannot open shard '", path_, "': ", std::strerror(errno));
  // With direct reads for every view, HDF5 is no longer needed: close it.
  bool all_direct = direct(View::Plain) && (!layout_.has_flip || direct(View::Flip));
  if (all_direct) {
    dsets_[0].reset();
    dsets_[1].reset();
    file_.reset();
  }
}

ShardFile::~ShardFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ShardFile::load_checksums() {
  const int views = layout_.has_flip ? 2 : 1;
  for (int v = 0; v < views; ++v) {
    const char* name = kRowChecksumDatasets[v];
    htri_t exists = H5Lexists(file_, name, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    if (exists <= 0) {
      if (v > 0 && has_row_checksums())
        RAE_THROW("shard '", path_, "' has '", kRowChecksumDatasets[0], "' but no '", name, "'");
      row_sums_[0].clear();
      return;  // no row checksums: the reader verifies the whole file instead
    }
    Handle d(H5Dopen2(file_, name, H5P_DEFAULT), Handle::Kind::Dataset);
    if (!d.valid()) h5::fail("cannot open dataset", path_, name);
    auto dims = h5::dataset_dims(d, path_, name);
    Handle ftype(H5Dget_type(d), Handle::Kind::Datatype);
    if (dims.size() != 1 || static_cast<int64_t>(dims[0]) != samples_ ||
        H5Tget_class(ftype) != H5T_INTEGER || H5Tget_size(ftype) != 8)
      RAE_THROW("shard '", path_, "' dataset '", name, "' must be (", samples_, ") uint64");
    row_sums_[v].resize(samples_);
    checked_[v] = std::make_unique<std::atomic<uint8_t>[]>(samples_);  // zero: none checked
    if (H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, row_sums_[v].data()) < 0)
      h5::fail("cannot read", path_, name);
  }
  Handle labels(H5Dopen2(file_, "labels", H5P_DEFAULT), Handle::Kind::Dataset);
  if (labels.valid() && h5::has_attr(labels, kChecksumAttr)) {
    const std::string stored = h5::read_string_attr(labels, kChecksumAttr, path_, "labels");
    const std::string actual = checksum_hex(xxh64(labels_.data(), labels_.size() * 4));
    if (actual != stored)
      RAE_THROW("shard '", path_, "' dataset 'labels' fails its checksum: xxh64 ", actual,
                ", stored ", stored, "; the file is corrupt (`rae cache verify` checks a cache)");
  }
}

void ShardFile::map_dataset(View view, const char* name, bool direct_io) {
  DataMap& map = maps_[static_cast<int>(view)];
  map.kind = MapKind::Hdf5;
  if (!direct_io) return;
  hid_t d = dsets_[static_cast<int>(view)];
  Handle dcpl(H5Dget_create_plist(d), Handle::Kind::Plist);
  if (!dcpl.valid()) h5::fail("cannot get the creation properties", path_, name);
  if (H5Pget_nfilters(dcpl) != 0) return;  // compressed or filtered: let HDF5 decode
  const uint64_t row_bytes = layout_.row_bytes();
  H5D_layout_t kind = H5Pget_layout(dcpl);
  if (kind == H5D_CONTIGUOUS) {
    haddr_t addr = H5Dget_offset(d);
    H5Eclear2(H5E_DEFAULT);
    if (addr == HADDR_UNDEF) return;
    map.offset = addr;
    map.kind = MapKind::Contiguous;
  } else if (kind == H5D_CHUNKED) {
    hsize_t cdims[3];
    if (H5Pget_chunk(dcpl, 3, cdims) != 3) return;
    if (static_cast<int64_t>(cdims[1]) != layout_.tokens() ||
        static_cast<int64_t>(cdims[2]) != layout_.channels)
      return;  // chunks that split a row: let HDF5 gather
    const int64_t chunk_rows = static_cast<int64_t>(cdims[0]);
    const int64_t nchunks = (samples_ + chunk_rows - 1) / chunk_rows;
    std::vector<uint64_t> addrs(nchunks);
    for (int64_t c = 0; c < nchunks; ++c) {
      hsize_t coord[3] = {static_cast<hsize_t>(c * chunk_rows), 0, 0};
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      if (H5Dget_chunk_info_by_coord(d, coord, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
          size != static_cast<hsize_t>(chunk_rows) * row_bytes) {
        H5Eclear2(H5E_DEFAULT);
        return;
      }
      addrs[c] = addr;
    }
    map.chunk_rows = chunk_rows;
    map.chunk_addr = std::move(addrs);
    map.kind = MapKind::Chunked;
  }
}

void ShardFile::pread_all(void* dst, size_t bytes, uint64_t offset, const char* dname) const {
  char* p = static_cast<char*>(dst);
  while (bytes > 0) {
    ssize_t got = ::pread(fd_, p, bytes, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      RAE_THROW("read error in shard '", path_, "' dataset '", dname, "': ", std::strerror(errno));
    }
    if (got == 0)
      RAE_THROW("shard '", path_, "' dataset '", dname, "' ends early at byte ", offset,
                " (truncated file)");
    p += got;
    bytes -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

void ShardFile::read_rows(View view, int64_t row0, int64_t count, void* dst) const {
  const int v = static_cast<int>(view);
  RAE_CHECK(v == 0 || layout_.has_flip, "shard '", path_, "' has no latents_flip");
  RAE_CHECK(row0 >= 0 && count >= 0 && row0 + count <= samples_, "shard '", path_, "': rows [",
            row0, ", ", row0 + count, ") out of range (", samples_, " samples)");
  if (!has_row_checksums()) return read_raw(v, row0, count, dst);
  if (!direct(view)) {  // H5Dread: the whole selection, then the checks
    read_raw(v, row0, count, dst);
    return check_rows(v, row0, count, dst);
  }
  const size_t row_bytes = layout_.row_bytes();
  const int64_t piece = std::max<int64_t>(1, static_cast<int64_t>(kVerifyPieceBytes / row_bytes));
  char* out = static_cast<char*>(dst);
  for (int64_t r = 0; r < count; r += piece) {
    const int64_t n = std::min(piece, count - r);
    read_raw(v, row0 + r, n, out + r * row_bytes);
    check_rows(v, row0 + r, n, out + r * row_bytes);
  }
}

void ShardFile::check_rows(int v, int64_t row0, int64_t count, const void* rows) const {
  const size_t row_bytes = layout_.row_bytes();
  const char* p = static_cast<const char*>(rows);
  for (int64_t r = 0; r < count; ++r) {
    std::atomic<uint8_t>& done = checked_[v][row0 + r];
    if (done.load(std::memory_order_relaxed)) continue;
    const uint64_t h = xxh64(p + r * row_bytes, row_bytes);
    const uint64_t want = row_sums_[v][row0 + r];
    if (h != want)
      RAE_THROW("shard '", path_, "' dataset '", kViewDatasets[v], "' row ", row0 + r, " (sample ",
                first_index_ + row0 + r, ") fails its checksum: xxh64 ", checksum_hex(h),
                ", stored ", checksum_hex(want),
                "; the file is corrupt (`rae cache verify` checks a whole cache)");
    done.store(1, std::memory_order_relaxed);
  }
}

void ShardFile::read_raw(int v, int64_t row0, int64_t count, void* dst) const {
  const char* name = kViewDatasets[v];
  const uint64_t row_bytes = layout_.row_bytes();
  const DataMap& map = maps_[v];
  switch (map.kind) {
    case MapKind::Contiguous:
      pread_all(dst, count * row_bytes, map.offset + row0 * row_bytes, name);
      return;
    case MapKind::Chunked: {
      char* out = static_cast<char*>(dst);
      int64_t r = row0, left = count;
      while (left > 0) {
        int64_t c = r / map.chunk_rows, within = r % map.chunk_rows;
        int64_t n = std::min(left, map.chunk_rows - within);
        pread_all(out, n * row_bytes, map.chunk_addr[c] + within * row_bytes, name);
        out += n * row_bytes;
        r += n;
        left -= n;
      }
      return;
    }
    default:
      break;
  }
  // HDF5 fallback (the thread-safe HDF5 build serializes these calls).
  hid_t d = dsets_[v];
  Handle fspace(H5Dget_space(d), Handle::Kind::Dataspace);
  hsize_t start[3] = {static_cast<hsize_t>(row0), 0, 0};
  hsize_t cnt[3] = {static_cast<hsize_t>(count), static_cast<hsize_t>(layout_.tokens()),
                    static_cast<hsize_t>(layout_.channels)};
  if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, cnt, nullptr) < 0)
    h5::fail("cannot select rows", path_, name);
  Handle mspace(H5Screate_simple(3, cnt, nullptr), Handle::Kind::Dataspace);
  if (H5Dread(d, mem_type_, mspace, fspace, H5P_DEFAULT, dst) < 0)
    h5::fail("cannot read rows", path_, name);
}

}  // namespace rae::cache
