// Latent cache shards: write/read round trips per storage dtype, atomic shard files, verify_cache
// on damaged caches, and the h5py-written golden cache (tests/reference/make_cache_golden.py).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "data/latent_cache_checksum.h"
#include "data/latent_cache_reader.h"
#include "data/latent_cache_shard.h"
#include "data/latent_cache_synth.h"
#include "data/latent_cache_verify.h"
#include "data/latent_cache_writer.h"
#include "support/util.h"

using namespace rae;
using namespace rae::cache;
namespace fs = std::filesystem;

namespace {

float round_to(StorageDType dt, float x) {
  if (dt == StorageDType::BF16) return bf16_bits_to_f32(f32_to_bf16_bits(x));
  if (dt == StorageDType::F16) return f16_bits_to_f32(f32_to_f16_bits(x));
  return x;
}

// Writes `n` random samples (and their negation as the flipped view) in shards of `shard_size`.
Manifest write_random_cache(const std::string& dir, const LatentLayout& layout, int64_t n,
                            int64_t shard_size, Tensor* values_out) {
  Tensor lat = test::randn({n, layout.tokens(), layout.channels}, 11, 2.0);
  Tensor flip = Tensor::empty(lat.shape());
  for (int64_t i = 0; i < lat.numel(); ++i) flip.data<float>()[i] = -lat.data<float>()[i];
  Tensor labels = Tensor::empty({n}, DType::I32);
  for (int64_t i = 0; i < n; ++i) labels.data<int32_t>()[i] = static_cast<int32_t>(i % 7);
  ShardSetWriter w(dir, "part-", layout, 0, shard_size);
  // Append in uneven pieces that straddle shard boundaries.
  for (int64_t a = 0; a < n;) {
    int64_t len = std::min<int64_t>(n - a, 1 + (a * 13) % 17);
    w.append(lat.narrow(0, a, len), layout.has_flip ? flip.narrow(0, a, len) : Tensor(),
             labels.narrow(0, a, len));
    a += len;
  }
  Manifest m;
  m.layout = layout;
  m.encoder_id = "test";
  m.num_classes = 7;
  m.shards = w.finish();
  m.finalize_shards();
  m.stats_file = kStatsFile;
  save_stats(dir + "/" + kStatsFile, w.stats(), layout.tokens(), layout.channels);
  m.save(dir);
  if (values_out) *values_out = lat;
  return m;
}

ReaderOptions in_order(int64_t gb) {
  ReaderOptions o;
  o.global_batch = gb;
  o.shuffle = false;
  o.use_flip = false;
  return o;
}

}  // namespace

class CacheRoundTrip : public ::testing::TestWithParam<StorageDType> {};

TEST_P(CacheRoundTrip, WriteThenReadEveryView) {
  const StorageDType dt = GetParam();
  LatentLayout layout{3, 2, 5, dt, true};
  std::string dir = test::make_temp_dir(std::string("roundtrip-") + storage_dtype_name(dt));
  Tensor values;
  Manifest m = write_random_cache(dir, layout, 50, 16, &values);
  ASSERT_EQ(m.shards.size(), 4u);
  EXPECT_EQ(m.shards[3].samples, 2);
  EXPECT_TRUE(verify_cache(dir).ok()) << verify_cache(dir).summary();
  for (bool direct : {true, false}) {
    ReaderOptions o = in_order(10);
    o.direct_io = direct;
    LatentCacheReader r(dir, o);
    EXPECT_EQ(r.steps_per_epoch(), 5);
    for (int64_t s = 0; s < 5; ++s) {
      Batch b = r.next();
      for (int64_t k = 0; k < 10; ++k) {
        int64_t g = s * 10 + k;
        ASSERT_EQ(b.indices.data<int64_t>()[k], g);
        ASSERT_EQ(b.labels.data<int32_t>()[k], g % 7);
      }
      for (int64_t i = 0; i < b.latents.numel(); ++i)
        ASSERT_EQ(b.latents.data<float>()[i], round_to(dt, values.data<float>()[s * 10 * 30 + i]))
            << "direct " << direct << " step " << s << " element " << i;
    }
    // Flipped view: random access, exact negation (rounding is sign-symmetric).
    Tensor f = r.read_samples({49, 0, 17}, true);
    for (int k = 0; k < 3; ++k) {
      int64_t g = std::vector<int64_t>{49, 0, 17}[k];
      for (int64_t i = 0; i < 30; ++i)
        ASSERT_EQ(f.data<float>()[k * 30 + i], -round_to(dt, values.data<float>()[g * 30 + i]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CacheRoundTrip,
                         ::testing::Values(StorageDType::BF16, StorageDType::F16,
                                           StorageDType::F32),
                         [](const auto& info) {
                           return std::string(storage_dtype_name(info.param));
                         });

TEST(CacheWriter, TmpUntilFinishAndRemovedWhenAbandoned) {
  std::string dir = test::make_temp_dir("writer-tmp");
  LatentLayout layout{1, 1, 4, StorageDType::BF16, false};
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int32_t y[2] = {0, 1};
  {
    ShardWriter w(dir, "s", layout, 0);
    w.append(x, nullptr, y, 2);
    EXPECT_TRUE(fs::exists(dir + "/s.h5.tmp"));
    EXPECT_FALSE(fs::exists(dir + "/s.h5"));
  }  // abandoned: no finish
  EXPECT_FALSE(fs::exists(dir + "/s.h5.tmp"));
  ShardWriter w(dir, "s", layout, 5);
  w.append(x, nullptr, y, 2);
  EXPECT_THROW(w.append(x, x, y, 2), Error);  // flips in a layout without flips
  ShardInfo info = w.finish();
  EXPECT_TRUE(fs::exists(dir + "/s.h5"));
  EXPECT_FALSE(fs::exists(dir + "/s.h5.tmp"));
  EXPECT_EQ(info.file, "s.h5");
  EXPECT_EQ(info.samples, 2);
  EXPECT_EQ(info.first_index, 5);
  EXPECT_EQ(info.bytes, fs::file_size(dir + "/s.h5"));
  EXPECT_EQ(info.checksum, file_checksum(dir + "/s.h5"));
  EXPECT_EQ(w.stats().count(), 2);
  EXPECT_DOUBLE_EQ(w.stats().mean()[0], 3.0);
}

TEST(CacheWriter, Bf16BlockEqualsScalarConversion) {
  // Bit-exact: the vectorised block conversion must store exactly what f32_to_bf16_bits stores
  // (ties to even, overflow to inf, NaN payloads and signs, subnormals, +-0).
  std::vector<uint32_t> words = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x3f808000u,
                                 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u,
                                 0xff800000u, 0x7f800001u, 0xffc00000u, 0x7fbfffffu, 0x7fff8000u,
                                 0x3f7fffffu, 0x4049fdb0u};
  uint32_t s = 7;
  for (int i = 0; i < 100000; ++i) words.push_back(s = s * 1664525u + 1013904223u);
  std::vector<float> src(words.size());
  std::memcpy(src.data(), words.data(), words.size() * 4);
  std::vector<uint16_t> bits(src.size());
  f32_to_bf16_block(src.data(), bits.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i)
    ASSERT_EQ(bits[i], f32_to_bf16_bits(src[i])) << "word " << std::hex << words[i];
}

TEST(CacheWriter, BadInputsAreNamed) {
  std::string dir = test::make_temp_dir("writer-bad");
  LatentLayout layout{2, 2, 3, StorageDType::BF16, false};
  ShardWriter w(dir, "s", layout, 0);
  Tensor labels = Tensor::zeros({2}, DType::I32);
  try {
    w.append(Tensor::zeros({2, 4, 4}), Tensor(), labels);
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("s.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(2, 4, 4)"), std::string::npos) << e.what();
  }
  w.append(Tensor::zeros({2, 2, 2, 3}, DType::BF16), Tensor(),
           labels);  // (n, H, W, C) bf16 accepted
  EXPECT_EQ(w.samples(), 2);
  EXPECT_THROW(ShardWriter(dir + "/no/such\0", "", layout, 0), Error);
}

TEST(CacheVerify, DetectsTruncatedCorruptAndMissingShards) {
  std::string dir = test::make_temp_dir("verify");
  LatentLayout layout{2, 2, 4, StorageDType::BF16, false};
  Manifest m = write_random_cache(dir, layout, 40, 10, nullptr);
  ASSERT_TRUE(verify_cache(dir).ok());
  // Truncate shard 1.
  fs::resize_file(dir + "/" + m.shards[1].file, m.shards[1].bytes - 100);
  // Flip one byte in shard 2 (same size).
  {
    std::fstream f(dir + "/" + m.shards[2].file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(m.shards[2].bytes - 7));
    f.put('\x5a');
  }
  fs::remove(dir + "/" + m.shards[3].file);
  std::ofstream(dir + "/stray.h5.tmp") << "x";
  VerifyReport rep = verify_cache(dir);
  EXPECT_FALSE(rep.ok());
  ASSERT_EQ(rep.problems.size(), 3u) << rep.summary();
  std::string all = rep.summary();
  EXPECT_NE(all.find(m.shards[1].file + "' is "), std::string::npos) << all;
  EXPECT_NE(all.find("(truncated)"), std::string::npos) << all;
  EXPECT_NE(all.find(m.shards[2].file + "' is corrupt"), std::string::npos) << all;
  EXPECT_NE(all.find(m.shards[3].file + "' is missing"), std::string::npos) << all;
  EXPECT_NE(all.find("stray.h5.tmp"), std::string::npos) << all;
  EXPECT_EQ(rep.shards_checked, 1);
  // The reader refuses the truncated shard with a message naming it.
  try {
    LatentCacheReader r(dir, in_order(10));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(m.shards[1].file), std::string::npos) << e.what();
  }
  EXPECT_FALSE(verify_cache(dir + "/nowhere").ok());
}

TEST(CacheVerify, NotAnHdf5File) {
  std::string dir = test::make_temp_dir("verify-nonh5");
  LatentLayout layout{1, 2, 2, StorageDType::F32, false};
  Manifest m = write_random_cache(dir, layout, 4, 4, nullptr);
  // Replace the shard by garbage and update the manifest so size and checksum match.
  std::string path = dir + "/" + m.shards[0].file;
  { std::ofstream(path, std::ios::trunc) << "this is not an HDF5 file"; }
  m.shards[0].checksum = file_checksum(path, &m.shards[0].bytes);
  m.save(dir);
  VerifyReport rep = verify_cache(dir);
  std::cout << rep.summary();  // shows the HDF5 error text as users see it
  ASSERT_EQ(rep.problems.size(), 1u) << rep.summary();
  EXPECT_NE(rep.problems[0].find("HDF5: cannot open shard"), std::string::npos) << rep.problems[0];
  EXPECT_NE(rep.problems[0].find(path), std::string::npos) << rep.problems[0];
}

TEST(CacheGolden, ReadsTheH5pyCache) {
  // Written by h5py (tests/reference/make_cache_golden.py); values are exact in bf16, so the
  // comparison is exact: latents[n, t, c] = (n - 4) / 2 + t / 4 + c / 8, flip mirrors w.
  std::string dir = test::golden_path("cache");
  VerifyReport rep = verify_cache(dir);
  EXPECT_TRUE(rep.ok()) << rep.summary();
  Manifest m = Manifest::load(dir);
  EXPECT_EQ(m.encoder_id, "golden-h5py");
  EXPECT_EQ(m.class_names[9], "class9");
  for (bool direct : {true, false}) {
    ShardFile shard(dir, m, m.shards[0], direct);
    EXPECT_EQ(shard.direct(View::Plain), direct);  // contiguous layout
    EXPECT_EQ(shard.direct(View::Flip), direct);   // chunked layout, partial last chunk
    EXPECT_EQ(shard.labels(), (std::vector<int32_t>{3, 1, 4, 1, 5, 9, 2, 6}));
    ReaderOptions o = in_order(8);
    o.direct_io = direct;
    LatentCacheReader r(dir, o);
    std::vector<int64_t> ids = {7, 0, 3, 4, 5, 1, 2, 6};
    Tensor plain = r.read_samples(ids, false), flip = r.read_samples(ids, true);
    for (size_t k = 0; k < ids.size(); ++k)
      for (int t = 0; t < 4; ++t)
        for (int c = 0; c < 4; ++c) {
          float want = (ids[k] - 4) * 0.5f + t * 0.25f + c * 0.125f;
          int tf = (t / 2) * 2 + (1 - t % 2);
          float want_flip = (ids[k] - 4) * 0.5f + tf * 0.25f + c * 0.125f;
          ASSERT_EQ(plain.data<float>()[(k * 4 + t) * 4 + c], want) << k << " " << t << " " << c;
          ASSERT_EQ(flip.data<float>()[(k * 4 + t) * 4 + c], want_flip)
              << k << " " << t << " " << c;
        }
  }
  // The stats numpy computed equal ours over the same values (f32 storage of f64 results).
  CacheStats st = load_stats(dir + "/stats.safetensors");
  EXPECT_EQ(st.count, 8);
  RunningStats ours(16);
  LatentCacheReader r(dir, in_order(8));
  Batch b = r.next();
  ours.add(b.latents.data<float>(), 8);
  for (int i = 0; i < 16; ++i) {
    EXPECT_FLOAT_EQ(st.mean.item(i), static_cast<float>(ours.mean()[i]));
    EXPECT_FLOAT_EQ(st.var.item(i), static_cast<float>(ours.variance()[i]));
  }
}

TEST(CacheSynth, ClassStructureAndStats) {
  std::string dir = test::make_temp_dir("synth");
  SynthOptions o;
  o.out = dir;
  o.samples = 300;
  o.grid_h = 2;
  o.grid_w = 3;
  o.channels = 4;
  o.classes = 3;
  o.shard_size = 128;
  o.flip = true;
  o.noise_std = 0.1f;
  Manifest m = write_synthetic_cache(o);
  EXPECT_EQ(m.shards.size(), 3u);
  EXPECT_TRUE(verify_cache(dir).ok());
  LatentCacheReader r(dir, in_order(300));
  Batch b = r.next();
  // Samples of one class are close to each other (noise 0.1), different classes far apart.
  std::vector<int64_t> first_of(3, -1);
  std::vector<float> want(24);
  for (int64_t g = 0; g < 300; ++g) {
    int32_t y = synth_sample(o, g, want.data());
    ASSERT_EQ(b.labels.data<int32_t>()[g], y);
    for (int i = 0; i < 24; ++i)  // bf16 storage: relative error <= 2^-8
      ASSERT_NEAR(b.latents.data<float>()[g * 24 + i], want[i], std::abs(want[i]) / 256 + 1e-6);
    if (first_of[y] < 0) first_of[y] = g;
  }
  for (int y = 0; y < 3; ++y) ASSERT_GE(first_of[y], 0) << "class " << y << " never drawn";
  // Flipped view mirrors W.
  Tensor f = r.read_samples({5}, true), p = r.read_samples({5}, false);
  for (int h = 0; h < 2; ++h)
    for (int w = 0; w < 3; ++w)
      for (int c = 0; c < 4; ++c)
        EXPECT_EQ(f.data<float>()[(h * 3 + w) * 4 + c], p.data<float>()[(h * 3 + 2 - w) * 4 + c]);
  CacheStats st = load_stats(dir + "/stats.safetensors");
  RunningStats direct(24);
  direct.add(b.latents.data<float>(), 300);
  EXPECT_EQ(st.count, 300);
  for (int i = 0; i < 24; ++i)
    EXPECT_FLOAT_EQ(st.var.item(i), static_cast<float>(direct.variance()[i]));
}
