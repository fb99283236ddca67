// Integrity on the read path of the latent cache: per-row checksums written by ShardWriter and
// checked by every read, labels checksums checked at open, whole-file verification of shards
// without row checksums, chunk sizes bounded by the shard, and statistics that do not depend on
// how the writer was fed.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/latent_cache_checksum.h"
#include "data/latent_cache_reader.h"
#include "data/latent_cache_shard.h"
#include "data/latent_cache_synth.h"
#include "data/latent_cache_writer.h"
#include "support/util.h"

using namespace rae;
using namespace rae::cache;
namespace fs = std::filesystem;

namespace {

SynthOptions synth(const std::string& dir, int64_t samples, int64_t shard_size) {
  SynthOptions o;
  o.out = dir;
  o.samples = samples;
  o.grid_h = o.grid_w = 4;
  o.channels = 16;
  o.classes = 5;
  o.shard_size = shard_size;
  o.flip = true;
  return o;
}

// File offset of row `row` of a chunked or contiguous dataset (uncompressed, whole-row chunks).
uint64_t row_offset(const std::string& path, const char* dset, int64_t row, size_t row_bytes) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  hid_t dcpl = H5Dget_create_plist(d);
  uint64_t off = 0;
  if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t cd[3];
    H5Pget_chunk(dcpl, 3, cd);
    hsize_t coord[3] = {static_cast<hsize_t>(row) / cd[0] * cd[0], 0, 0};
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    H5Dget_chunk_info_by_coord(d, coord, &mask, &addr, &size);
    off = addr + (row % cd[0]) * row_bytes;
  } else {
    off = H5Dget_offset(d) + row * row_bytes;
  }
  H5Pclose(dcpl);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

// XORs `n` bytes at `offset` of a file with 0x5a (what a bad disk block or a stray write does).
void flip_bytes(const std::string& path, uint64_t offset, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  std::vector<char> b(n);
  f.seekg(static_cast<std::streamoff>(offset));
  f.read(b.data(), static_cast<std::streamsize>(n));
  for (char& c : b) c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(b.data(), static_cast<std::streamsize>(n));
}

std::vector<uint64_t> read_u64(const std::string& path, const char* dset) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  std::vector<uint64_t> v(H5Sget_simple_extent_npoints(s));
  H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

hsize_t chunk_rows(const std::string& path, const char* dset) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  hid_t dcpl = H5Dget_create_plist(d);
  hsize_t cd[3] = {0, 0, 0};
  H5Pget_chunk(dcpl, 3, cd);
  H5Pclose(dcpl);
  H5Dclose(d);
  H5Fclose(f);
  return cd[0];
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

ReaderOptions epoch_reader(int64_t gb, bool direct = true) {
  ReaderOptions o;
  o.global_batch = gb;
  o.threads = 1;
  o.prefetch = 1;
  o.direct_io = direct;
  return o;
}

}  // namespace

TEST(CacheIntegrity, WriterStoresRowAndLabelChecksums) {
  const std::string dir = test::make_temp_dir("integrity-sums");
  Manifest m = write_synthetic_cache(synth(dir, 40, 16));
  ASSERT_EQ(m.shards.size(), 3u);
  const size_t rb = m.layout.row_bytes();
  for (const ShardInfo& s : m.shards) {
    const std::string path = dir + "/" + s.file;
    ShardFile f(dir, m, s);
    EXPECT_TRUE(f.has_row_checksums());
    for (int v = 0; v < 2; ++v) {
      std::vector<uint64_t> sums = read_u64(path, kRowChecksumDatasets[v]);
      ASSERT_EQ(static_cast<int64_t>(sums.size()), s.samples);
      std::vector<char> row(rb);
      for (int64_t r = 0; r < s.samples; ++r) {
        f.read_rows(static_cast<View>(v), r, 1, row.data());
        EXPECT_EQ(xxh64(row.data(), rb), sums[r]) << s.file << " view " << v << " row " << r;
      }
    }
    // Chunks never exceed the shard (the last one holds 8 samples).
    EXPECT_EQ(chunk_rows(path, "latents"), static_cast<hsize_t>(s.samples)) << s.file;
    EXPECT_EQ(chunk_rows(path, "latents_flip"), static_cast<hsize_t>(s.samples)) << s.file;
  }
}

TEST(CacheIntegrity, FlippedBytesInLatentsStopTheReaderNamingShardAndRow) {
  // The audit's case: 4 KiB of flipped bytes inside `latents`.
  for (bool direct : {true, false}) {
    const std::string dir = test::make_temp_dir("integrity-latents");
    Manifest m = write_synthetic_cache(synth(dir, 64, 32));
    const std::string path = dir + "/" + m.shards[1].file;
    const size_t rb = m.layout.row_bytes();  // 512 bytes: 4 KiB spans 8 rows
    flip_bytes(path, row_offset(path, "latents", 10, rb), 4096);
    std::string e = error_of([&] {
      LatentCacheReader r(dir, epoch_reader(16, direct));
      for (int64_t s = 0; s < r.steps_per_epoch(); ++s) r.next();
    });
    EXPECT_NE(e.find(m.shards[1].file), std::string::npos) << e;
    EXPECT_NE(e.find("dataset 'latents' row 1"), std::string::npos) << e;  // rows 10-17
    EXPECT_NE(e.find("fails its checksum"), std::string::npos) << e;
    // Direct access too, and the flipped view of the same rows is intact.
    LatentCacheReader r(dir, epoch_reader(16, direct));
    EXPECT_NE(error_of([&] { r.read_samples({32 + 12}); }).find("row 12 (sample 44)"),
              std::string::npos);
    EXPECT_EQ(error_of([&] { r.read_samples({32 + 12}, true); }), "");
  }
}

TEST(CacheIntegrity, ChangedLabelFailsAtOpenNamingTheShard) {
  const std::string dir = test::make_temp_dir("integrity-labels");
  Manifest m = write_synthetic_cache(synth(dir, 32, 32));
  const std::string path = dir + "/" + m.shards[0].file;
  {  // a label changed to another valid class: in range, so only the checksum can tell
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "labels", H5P_DEFAULT);
    std::vector<int32_t> labels(32);
    H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
    labels[7] = (labels[7] + 1) % 5;
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
    H5Dclose(d);
    H5Fclose(f);
  }
  m.shards[0].bytes = fs::file_size(path);  // the size check is not what should catch it
  std::string e = error_of([&] { ShardFile f(dir, m, m.shards[0]); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("dataset 'labels' fails its checksum"), std::string::npos) << e;
}

TEST(CacheIntegrity, ShardsWithoutRowChecksumsAreVerifiedWholeAtOpen) {
  // The golden cache was written by h5py: no row checksums, so the reader hashes the file.
  const std::string dir = test::make_temp_dir("integrity-legacy");
  fs::copy(test::golden_path("cache"), dir, fs::copy_options::recursive);
  Manifest m = Manifest::load(dir);
  EXPECT_FALSE(ShardFile(dir, m, m.shards[0]).has_row_checksums());
  EXPECT_EQ(error_of([&] { LatentCacheReader r(dir, epoch_reader(8)); }), "");
  const std::string path = dir + "/" + m.shards[0].file;
  flip_bytes(path, row_offset(path, "latents", 3, m.layout.row_bytes()), 4);
  std::string e = error_of([&] { LatentCacheReader r(dir, epoch_reader(8)); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("is corrupt: xxh64"), std::string::npos) << e;
}

TEST(CacheIntegrity, StatisticsDoNotDependOnAppendBatchesAndEqualAReadBack) {
  LatentLayout layout{3, 2, 5, StorageDType::BF16, false};
  const int64_t n = 57, e = layout.elements();
  Tensor x = test::randn({n, layout.tokens(), layout.channels}, 3, 2.0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 7.0f;
  Tensor labels = Tensor::zeros({n}, DType::I32);
  std::vector<RunningStats> results;
  std::string dir;
  ShardInfo info;
  for (int64_t piece : {1, 7, 57}) {
    dir = test::make_temp_dir("integrity-stats");
    ShardWriter w(dir, "s", layout, 0, n);
    for (int64_t a = 0; a < n; a += piece) {
      int64_t len = std::min(piece, n - a);
      w.append(x.narrow(0, a, len), Tensor(), labels.narrow(0, a, len));
    }
    info = w.finish();
    results.push_back(w.stats());
  }
  Manifest m;
  m.layout = layout;
  m.shards = {info};
  m.num_classes = 1;
  ShardFile f(dir, m, info);
  std::vector<uint16_t> stored(n * e);
  f.read_rows(View::Plain, 0, n, stored.data());
  StatsAccumulator back(e);
  back.add(stored.data(), StorageDType::BF16, n);
  results.push_back(back.stats());
  for (size_t k = 1; k < results.size(); ++k) {
    EXPECT_EQ(results[k].count(), n);
    EXPECT_EQ(results[k].mean(), results[0].mean()) << k;  // bit for bit
    EXPECT_EQ(results[k].m2(), results[0].m2()) << k;
  }
  // And they are the statistics: two-pass double over the stored values.
  for (int64_t i = 0; i < e; ++i) {
    double mean = 0, m2 = 0;
    for (int64_t r = 0; r < n; ++r) mean += bf16_bits_to_f32(stored[r * e + i]);
    mean /= n;
    for (int64_t r = 0; r < n; ++r) {
      double d = bf16_bits_to_f32(stored[r * e + i]) - mean;
      m2 += d * d;
    }
    EXPECT_NEAR(results[0].mean()[i], mean, 1e-12 * std::abs(mean));
    EXPECT_NEAR(results[0].m2()[i], m2, 1e-10 * m2);
  }
}
