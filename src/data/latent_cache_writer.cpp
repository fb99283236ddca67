#include "data/latent_cache_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "data/latent_cache_checksum.h"
#include "data/latent_cache_h5.h"
#include "data/latent_cache_shard.h"
#include "ops/cpu/cpu_util.h"

namespace rae::cache {

namespace fs = std::filesystem;
using h5::Handle;

RAE_VEC_CLONES_V3 void f32_to_bf16_block(const float* src, uint16_t* bits, size_t count) {
  // Branch-free form of f32_to_bf16_bits (same results bit for bit) so that the compiler
  // vectorises it: round to nearest even, NaN kept quiet with its sign and top payload bits.
  for (size_t i = 0; i < count; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    const uint32_t rne = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x40u;
    bits[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rne);
  }
}

struct ShardWriter::Impl {
  std::string dir, name, tmp_path, final_path;
  LatentLayout layout;
  int64_t first_index = 0;
  int64_t rows = 0;
  int64_t chunk_rows = 1;
  bool finished = false;
  Handle file, latents, latents_flip;
  Handle storage_type;  // file and memory type of latent elements
  StatsAccumulator stats{0};
  RunningStats stats_out;  // stats.stats(), refreshed by wait_stats()
  // 16-bit storage of the batch, per view: grown as needed, never zero-filled.
  std::unique_ptr<uint16_t[]> bits16[2];
  size_t bits16_size[2] = {0, 0};
  std::vector<uint64_t> row_sums[2];  // xxh64 of every stored row, per view
  std::vector<int32_t> labels;        // written at finish(), with the index
  // The plain view's row checksums and statistics run on a second thread while the rows are
  // written (the only reader of bits16[0] and writer of `stats` and row_sums[0]; wait_stats()
  // before touching any of them).
  std::future<void> stats_job;

  void wait_stats() {
    if (stats_job.valid()) stats_job.get();  // rethrows a failure of the job
  }

  // Dataset creation properties without the object modification times HDF5 would otherwise
  // store: the same input then gives the same file bytes (and checksum) on every run.
  Handle untimed_dcpl() {
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), Handle::Kind::Plist);
    if (!dcpl.valid() || H5Pset_obj_track_times(dcpl, false) < 0)
      h5::fail("cannot set the dataset creation properties", tmp_path);
    return dcpl;
  }

  Handle create_dataset(const char* dname, hid_t type, int rank, const hsize_t* row_dims,
                        hsize_t chunk) {
    std::vector<hsize_t> dims(rank), maxdims(rank), chunks(rank);
    dims[0] = 0;
    maxdims[0] = H5S_UNLIMITED;
    chunks[0] = chunk;
    for (int i = 1; i < rank; ++i) dims[i] = maxdims[i] = chunks[i] = row_dims[i - 1];
    Handle space(H5Screate_simple(rank, dims.data(), maxdims.data()), Handle::Kind::Dataspace);
    Handle dcpl = untimed_dcpl();
    if (H5Pset_chunk(dcpl, rank, chunks.data()) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)
      h5::fail("cannot set the chunk layout", tmp_path, dname);
    Handle d(H5Dcreate2(file, dname, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
             Handle::Kind::Dataset);
    if (!d.valid()) h5::fail("cannot create dataset", tmp_path, dname);
    return d;
  }

  // A 1-D contiguous dataset of n values written in one go (labels, index, row checksums: their
  // size is known when the shard is finished, so they need no chunking).
  Handle write_vector(const char* dname, hid_t file_type, hid_t mem_type, const void* data,
                      int64_t n) {
    const hsize_t dims[1] = {static_cast<hsize_t>(n)};
    Handle space(H5Screate_simple(1, dims, nullptr), Handle::Kind::Dataspace);
    Handle dcpl = untimed_dcpl();
    Handle d(H5Dcreate2(file, dname, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
             Handle::Kind::Dataset);
    if (!d.valid()) h5::fail("cannot create dataset", tmp_path, dname);
    if (H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
      h5::fail("cannot write (disk full?)", tmp_path, dname);
    return d;
  }

  // Extends `d` by n rows and writes `data` (memory type mtype) into them.
  void write_rows(Handle& d, const char* dname, hid_t mtype, const void* data, int64_t n) {
    h5::quiet_errors();  // per thread: append may run on another thread than the constructor
    std::vector<hsize_t> dims = h5::dataset_dims(d, tmp_path, dname);
    hsize_t old = dims[0];
    dims[0] = old + n;
    if (H5Dset_extent(d, dims.data()) < 0) h5::fail("cannot extend dataset", tmp_path, dname);
    Handle fspace(H5Dget_space(d), Handle::Kind::Dataspace);
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[0] = old;
    count[0] = n;
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) <
        0)
      h5::fail("cannot select rows", tmp_path, dname);
    Handle mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                  Handle::Kind::Dataspace);
    if (H5Dwrite(d, mtype, mspace, fspace, H5P_DEFAULT, data) < 0)
      h5::fail("cannot write rows (disk full?)", tmp_path, dname);
  }

  uint16_t* bits_for(int view, size_t count) {
    if (bits16_size[view] < count) {
      bits16[view].reset(new uint16_t[count]);  // uninitialised: every element is written next
      bits16_size[view] = count;
    }
    return bits16[view].get();
  }

  // Converts n rows of f32 to the storage dtype, records the xxh64 of each stored row, writes
  // them, and for the plain view (0) updates the statistics from the stored values. With 16-bit
  // storage the plain view's checksums and statistics run on the second thread, in parallel with
  // the flipped view's conversion and both views' writes.
  void write_latents(int view, const float* src, int64_t n) {
    Handle& d = view == 0 ? latents : latents_flip;
    const char* dname = view == 0 ? "latents" : "latents_flip";
    const int64_t e = layout.elements();
    const size_t rb = layout.row_bytes();
    if (layout.dtype == StorageDType::F32) {  // stored as given
      for (int64_t r = 0; r < n; ++r) row_sums[view].push_back(xxh64(src + r * e, rb));
      write_rows(d, dname, H5T_NATIVE_FLOAT, src, n);
      if (view == 0) stats.add(src, n);  // src is the caller's: not kept past this call
      return;
    }
    if (view == 0) wait_stats();  // the job reads bits16[0]
    uint16_t* bits = bits_for(view, static_cast<size_t>(n * e));
    if (layout.dtype == StorageDType::BF16) {
      f32_to_bf16_block(src, bits, static_cast<size_t>(n * e));
    } else {
      for (int64_t i = 0; i < n * e; ++i) bits[i] = f32_to_f16_bits(src[i]);
    }
    if (view == 0) {
      stats_job = std::async(std::launch::async, [this, bits, n, e, rb] {
        for (int64_t r = 0; r < n; ++r) row_sums[0].push_back(xxh64(bits + r * e, rb));
        stats.add(bits, layout.dtype, n);
      });
    } else {
      for (int64_t r = 0; r < n; ++r) row_sums[1].push_back(xxh64(bits + r * e, rb));
    }
    const hid_t mtype = layout.dtype == StorageDType::BF16 ? H5T_NATIVE_UINT16 : storage_type.get();
    write_rows(d, dname, mtype, bits, n);
  }

  // Starts asynchronous writeback of the pages written so far, so that the disk works while the
  // caller encodes the next batch and finish()'s fsync has little left to wait for (without it
  // the whole shard is written out only at the fsync, as with `dd conv=fsync`).
  void start_writeback() {
#ifdef SYNC_FILE_RANGE_WRITE
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || !handle) {
      H5Eclear2(H5E_DEFAULT);
      return;  // not the default (sec2) driver: nothing to do, fsync still makes it durable
    }
    ::sync_file_range(*static_cast<int*>(handle), 0, 0, SYNC_FILE_RANGE_WRITE);  // a hint only
#endif
  }

  void remove_tmp() {
    if (stats_job.valid()) stats_job.wait();
    latents.reset();
    latents_flip.reset();
    file.reset();
    std::error_code ec;
    fs::remove(tmp_path, ec);
  }
};

ShardWriter::ShardWriter(const std::string& dir, const std::string& name,
                         const LatentLayout& layout, int64_t first_index, int64_t expected_samples)
    : impl_(std::make_unique<Impl>()) {
  h5::quiet_errors();
  Impl& m = *impl_;
  RAE_CHECK(layout.in_bounds(), "ShardWriter: bad latent layout ", layout.grid_h, "x",
            layout.grid_w, "x", layout.channels, " (each > 0, at most ", kMaxSampleElements,
            " elements per sample)");
  RAE_CHECK(first_index >= 0, "ShardWriter: negative first_index ", first_index);
  RAE_CHECK(!name.empty() && name.find('/') == std::string::npos,
            "ShardWriter: shard name must be a plain file name, got '", name, "'");
  m.dir = dir;
  m.name = name;
  m.layout = layout;
  m.first_index = first_index;
  m.final_path = (fs::path(dir) / (name + ".h5")).string();
  m.tmp_path = m.final_path + ".tmp";
  m.stats = StatsAccumulator(layout.elements());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) RAE_THROW("cannot create cache directory '", dir, "': ", ec.message());

  try {  // a failure part-way must not leave a half-made .tmp file behind
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), Handle::Kind::Plist);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    m.file =
        Handle(H5Fcreate(m.tmp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), Handle::Kind::File);
    if (!m.file.valid()) h5::fail("cannot create shard file", m.tmp_path);

    const std::string dtname = storage_dtype_name(layout.dtype);
    switch (layout.dtype) {
      case StorageDType::BF16:
        m.storage_type = Handle(H5Tcopy(H5T_STD_U16LE), Handle::Kind::Datatype);
        break;
      case StorageDType::F16:
        m.storage_type = h5::make_f16_type();
        break;
      case StorageDType::F32:
        m.storage_type = Handle(H5Tcopy(H5T_IEEE_F32LE), Handle::Kind::Datatype);
        break;
    }
    hid_t root = m.file;
    h5::write_string_attr(root, "format", kFormatName, m.tmp_path, "/");
    h5::write_int_attr(root, "format_version", kFormatVersion, m.tmp_path, "/");
    h5::write_int_attr(root, "grid_h", layout.grid_h, m.tmp_path, "/");
    h5::write_int_attr(root, "grid_w", layout.grid_w, m.tmp_path, "/");
    h5::write_int_attr(root, "channels", layout.channels, m.tmp_path, "/");
    h5::write_string_attr(root, "dtype", dtname, m.tmp_path, "/");
    h5::write_int_attr(root, "first_index", first_index, m.tmp_path, "/");

    m.chunk_rows =
        std::max<int64_t>(1, static_cast<int64_t>(kChunkTargetBytes / layout.row_bytes()));
    if (expected_samples > 0) m.chunk_rows = std::min(m.chunk_rows, expected_samples);
    const hsize_t row[2] = {static_cast<hsize_t>(layout.tokens()),
                            static_cast<hsize_t>(layout.channels)};
    m.latents = m.create_dataset("latents", m.storage_type, 3, row, m.chunk_rows);
    h5::write_string_attr(m.latents, "dtype", dtname, m.tmp_path, "latents");
    if (layout.has_flip) {
      m.latents_flip = m.create_dataset("latents_flip", m.storage_type, 3, row, m.chunk_rows);
      h5::write_string_attr(m.latents_flip, "dtype", dtname, m.tmp_path, "latents_flip");
    }
  } catch (...) {
    m.remove_tmp();
    throw;
  }
}

ShardWriter::~ShardWriter() {
  if (impl_ && !impl_->finished) impl_->remove_tmp();
}

void ShardWriter::append(const float* lat, const float* flip, const int32_t* labels, int64_t n) {
  Impl& m = *impl_;
  RAE_CHECK(!m.finished, "ShardWriter: append after finish ('", m.final_path, "')");
  RAE_CHECK(n >= 0, "ShardWriter: negative sample count");
  if (n == 0) return;
  RAE_CHECK(m.layout.has_flip == (flip != nullptr), "ShardWriter '", m.final_path, "': the layout ",
            m.layout.has_flip ? "needs" : "has no", " flipped latents");
  m.write_latents(0, lat, n);
  if (flip) m.write_latents(1, flip, n);
  m.labels.insert(m.labels.end(), labels, labels + n);
  m.rows += n;
  m.start_writeback();
}

namespace {
// A contiguous f32 copy (or the tensor itself when already f32) of a (n, ...) latent tensor.
Tensor as_f32_rows(const Tensor& t, const LatentLayout& layout, const char* what,
                   const std::string& file) {
  RAE_CHECK(!t.is_cuda(), "ShardWriter '", file, "': ", what, " must be a CPU tensor");
  RAE_CHECK(t.is_contiguous(), "ShardWriter '", file, "': ", what, " must be contiguous");
  bool shape_ok = (t.ndim() == 3 && t.dim(1) == layout.tokens() && t.dim(2) == layout.channels) ||
                  (t.ndim() == 4 && t.dim(1) == layout.grid_h && t.dim(2) == layout.grid_w &&
                   t.dim(3) == layout.channels);
  RAE_CHECK(shape_ok, "ShardWriter '", file, "': ", what, " has shape ", t.shape().str(),
            ", expected (n, ", layout.tokens(), ", ", layout.channels, ") or (n, ", layout.grid_h,
            ", ", layout.grid_w, ", ", layout.channels, ")");
  RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16,
            "ShardWriter '", file, "': ", what, " dtype ", dtype_name(t.dtype()),
            " (expected f32, bf16, f16)");
  return t.dtype() == DType::F32 ? t : t.cast(DType::F32);
}
}  // namespace

void ShardWriter::append(const Tensor& latents, const Tensor& latents_flip, const Tensor& labels) {
  Impl& m = *impl_;
  Tensor lat = as_f32_rows(latents, m.layout, "latents", m.final_path);
  const int64_t n = lat.dim(0);
  Tensor flip;
  if (latents_flip.defined()) {
    flip = as_f32_rows(latents_flip, m.layout, "latents_flip", m.final_path);
    RAE_CHECK(flip.dim(0) == n, "ShardWriter '", m.final_path, "': latents_flip has ", flip.dim(0),
              " samples, latents ", n);
  }
  RAE_CHECK(labels.ndim() == 1 && labels.dim(0) == n && labels.dtype() == DType::I32 &&
                !labels.is_cuda() && labels.is_contiguous(),
            "ShardWriter '", m.final_path, "': labels must be a contiguous CPU i32 tensor (", n,
            "), got ", labels.str());
  append(lat.data<float>(), flip.defined() ? flip.data<float>() : nullptr, labels.data<int32_t>(),
         n);
}

int64_t ShardWriter::samples() const {
  return impl_->rows;
}
const RunningStats& ShardWriter::stats() const {
  impl_->wait_stats();
  impl_->stats_out = impl_->stats.stats();
  return impl_->stats_out;
}
const std::string& ShardWriter::final_path() const {
  return impl_->final_path;
}

ShardInfo ShardWriter::finish() {
  Impl& m = *impl_;
  RAE_CHECK(!m.finished, "ShardWriter: finish called twice ('", m.final_path, "')");
  RAE_CHECK(m.rows > 0, "ShardWriter: shard '", m.final_path, "' has no samples");
  m.wait_stats();
  m.latents.close_checked(m.tmp_path, "latents");
  m.latents_flip.close_checked(m.tmp_path, "latents_flip");
  {
    Handle labels =
        m.write_vector("labels", H5T_STD_I32LE, H5T_NATIVE_INT32, m.labels.data(), m.rows);
    h5::write_string_attr(labels, kChecksumAttr,
                          checksum_hex(xxh64(m.labels.data(), m.labels.size() * sizeof(int32_t))),
                          m.tmp_path, "labels");
    labels.close_checked(m.tmp_path, "labels");
    std::vector<int64_t> ids(m.rows);
    for (int64_t i = 0; i < m.rows; ++i) ids[i] = m.first_index + i;
    m.write_vector("index", H5T_STD_I64LE, H5T_NATIVE_INT64, ids.data(), m.rows)
        .close_checked(m.tmp_path, "index");
    for (int v = 0; v < (m.layout.has_flip ? 2 : 1); ++v)
      m.write_vector(kRowChecksumDatasets[v], H5T_STD_U64LE, H5T_NATIVE_UINT64,
                     m.row_sums[v].data(), m.rows)
          .close_checked(m.tmp_path, kRowChecksumDatasets[v]);
  }
  if (H5Fflush(m.file, H5F_SCOPE_GLOBAL) < 0)
    h5::fail("cannot flush shard (disk full?)", m.tmp_path);
  m.file.close_checked(m.tmp_path);
  ShardInfo info;
  info.file = m.name + ".h5";
  info.samples = m.rows;
  info.first_index = m.first_index;
  // The file is complete: hash it (from the page cache) while the fsync waits for the disk.
  auto checksum =
      std::async(std::launch::async, [&] { return file_checksum(m.tmp_path, &info.bytes); });
  try {
    fsync_path(m.tmp_path);
  } catch (...) {
    checksum.wait();
    throw;
  }
  info.checksum = checksum.get();
  rename_durable(m.tmp_path, m.final_path);
  m.finished = true;
  return info;
}

ShardSetWriter::ShardSetWriter(const std::string& dir, const std::string& prefix,
                               const LatentLayout& layout, int64_t first_index, int64_t shard_size,
                               int64_t total_samples)
    : dir_(dir),
      prefix_(prefix),
      layout_(layout),
      first_index_(first_index),
      next_index_(first_index),
      shard_size_(shard_size),
      total_samples_(total_samples),
      stats_(layout.elements()) {
  RAE_CHECK(shard_size > 0, "ShardSetWriter: shard size must be > 0, got ", shard_size);
}

void ShardSetWriter::close_open() {
  if (!open_) return;
  done_.push_back(open_->finish());
  stats_.merge(open_->stats());
  open_.reset();
}

void ShardSetWriter::append(const float* lat, const float* flip, const int32_t* labels, int64_t n) {
  const int64_t e = layout_.elements();
  int64_t done = 0;
  while (done < n) {
    if (!open_) {
      char num[16];
      std::snprintf(num, sizeof num, "%05zu", done_.size());
      int64_t expected = shard_size_;
      if (total_samples_ > 0)
        expected = std::clamp<int64_t>(first_index_ + total_samples_ - next_index_, 1, shard_size_);
      open_ = std::make_unique<ShardWriter>(dir_, prefix_ + num, layout_, next_index_, expected);
    }
    int64_t take = std::min(n - done, shard_size_ - open_->samples());
    open_->append(lat + done * e, flip ? flip + done * e : nullptr, labels + done, take);
    done += take;
    next_index_ += take;
    if (open_->samples() == shard_size_) close_open();
  }
}

void ShardSetWriter::append(const Tensor& latents, const Tensor& latents_flip,
                            const Tensor& labels) {
  RAE_CHECK(latents.defined() && labels.defined(),
            "ShardSetWriter: latents and labels are required");
  Tensor lat = latents.dtype() == DType::F32 ? latents : latents.cast(DType::F32);
  Tensor flip = !latents_flip.defined() || latents_flip.dtype() == DType::F32
                    ? latents_flip
                    : latents_flip.cast(DType::F32);
  RAE_CHECK(!lat.is_cuda() && lat.is_contiguous() && lat.numel() == lat.dim(0) * layout_.elements(),
            "ShardSetWriter: latents ", lat.str(), " must be contiguous CPU (n, ", layout_.tokens(),
            ", ", layout_.channels, ")");
  RAE_CHECK(!flip.defined() || flip.shape() == lat.shape(), "ShardSetWriter: latents_flip shape ",
            flip.defined() ? flip.shape().str() : "", " differs from latents ", lat.shape().str());
  RAE_CHECK(labels.dtype() == DType::I32 && labels.ndim() == 1 && labels.dim(0) == lat.dim(0) &&
                !labels.is_cuda() && labels.is_contiguous(),
            "ShardSetWriter: labels must be contiguous CPU i32 (", lat.dim(0), "), got ",
            labels.str());
  append(lat.data<float>(), flip.defined() ? flip.data<float>() : nullptr, labels.data<int32_t>(),
         lat.dim(0));
}

std::vector<ShardInfo> ShardSetWriter::finish() {
  close_open();
  return done_;
}

}  // namespace rae::cache
