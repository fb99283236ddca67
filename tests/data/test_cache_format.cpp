// Latent cache format pieces: XXH64, manifest JSON (round trip and error messages), stats.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/latent_cache_checksum.h"
#include "data/latent_cache_manifest.h"
#include "data/latent_cache_stats.h"
#include "support/util.h"

using namespace rae;
using namespace rae::cache;

namespace {

Manifest sample_manifest() {
  Manifest m;
  m.layout = {2, 3, 4, StorageDType::BF16, true};
  m.encoder_id = "dinov2-b-reg";
  m.encoder_weights_hash = "abc123";
  m.image_size = 256;
  m.split = "train";
  m.num_classes = 2;
  m.class_names = {"cat", "dog"};
  m.stats_file = kStatsFile;
  m.shards = {{"b.h5", 5, 10, 100, "00000000000000ff"}, {"a.h5", 10, 0, 200, "0123456789abcdef"}};
  m.finalize_shards();
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace

TEST(CacheChecksum, KnownVectors) {
  // Published XXH64 (seed 0) values of "", "a", "abc".
  EXPECT_EQ(checksum_hex(xxh64("", 0)), "ef46db3751d8e999");
  EXPECT_EQ(checksum_hex(xxh64("a", 1)), "d24ec4f1a98c6e5b");
  EXPECT_EQ(checksum_hex(xxh64("abc", 3)), "44bc2cf5ad770999");
}

TEST(CacheChecksum, StreamingEqualsOneShot) {
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  // Same bytes as tests/reference/cache_format_py.py computes for bytes(range(100)).
  std::string hundred(100, '\0');
  for (int i = 0; i < 100; ++i) hundred[i] = static_cast<char>(i);
  EXPECT_EQ(checksum_hex(xxh64(hundred.data(), 100)), "6ac1e58032166597");
  for (size_t len : {0, 1, 7, 31, 32, 33, 64, 100, 999, 1000}) {
    uint64_t want = xxh64(data.data(), len);
    for (size_t split : {1, 3, 16, 31, 32, 45}) {
      Xxh64 s;
      for (size_t p = 0; p < len; p += split) s.update(data.data() + p, std::min(split, len - p));
      EXPECT_EQ(s.digest(), want) << "len " << len << " split " << split;
    }
  }
}

TEST(CacheManifest, RoundTripAndShardLookup) {
  Manifest m = sample_manifest();
  EXPECT_EQ(m.shards[0].file, "a.h5");  // sorted by first_index
  EXPECT_EQ(m.total_samples, 15);
  std::string dir = test::make_temp_dir("manifest");
  m.save(dir);
  Manifest r = Manifest::load(dir);
  EXPECT_EQ(r.to_json_string(), m.to_json_string());
  EXPECT_EQ(r.layout.tokens(), 6);
  EXPECT_TRUE(r.layout.has_flip);
  EXPECT_EQ(r.class_names[1], "dog");
  EXPECT_EQ(r.shard_of(0), 0u);
  EXPECT_EQ(r.shard_of(9), 0u);
  EXPECT_EQ(r.shard_of(10), 1u);
  EXPECT_EQ(r.shard_of(14), 1u);
  EXPECT_THROW(r.shard_of(15), Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/manifest.json.tmp"));
}

TEST(CacheManifest, MissingFileNamesThePath) {
  std::string dir = test::make_temp_dir("manifest-missing");
  std::string msg = error_of([&] { Manifest::load(dir); });
  EXPECT_NE(msg.find(dir + "/manifest.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST(CacheManifest, CorruptJsonNamesTheFile) {
  std::string dir = test::make_temp_dir("manifest-corrupt");
  std::string text = sample_manifest().to_json_string();
  write_text(dir + "/manifest.json", text.substr(0, text.size() / 2));
  std::string msg = error_of([&] { Manifest::load(dir); });
  EXPECT_NE(msg.find("manifest.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

TEST(CacheManifest, BadKeysAreNamed) {
  std::string good = sample_manifest().to_json_string();
  auto msg_for = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    size_t p = text.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    text.replace(p, from.size(), to);
    return error_of([&] { Manifest::from_json_string(text, "m.json"); });
  };
  std::string msg = msg_for("\"channels\": 4", "\"channels\": 4, \"chanels\": 4");
  EXPECT_NE(msg.find("'chanels' is not a known key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.json"), std::string::npos) << msg;
  msg = msg_for("\"channels\": 4", "\"channels\": \"4\"");
  EXPECT_NE(msg.find("key 'channels' must be an integer"), std::string::npos) << msg;
  msg = msg_for("\"dtype\": \"bf16\"", "\"dtype\": \"int8\"");
  EXPECT_NE(msg.find("key 'dtype'"), std::string::npos) << msg;
  msg = msg_for("\"first_index\": 10", "\"first_index\": 11");
  EXPECT_NE(msg.find("shards[1].first_index"), std::string::npos) << msg;
  msg = msg_for("\"checksum\": \"00000000000000ff\"", "\"checksum\": \"xyz\"");
  EXPECT_NE(msg.find("shards[1].checksum"), std::string::npos) << msg;
  msg = msg_for("\"total_samples\": 15", "\"total_samples\": 16");
  EXPECT_NE(msg.find("key 'total_samples'"), std::string::npos) << msg;
  msg = msg_for("\"file\": \"a.h5\"", "\"file\": \"../a.h5\"");
  EXPECT_NE(msg.find("shards[0].file"), std::string::npos) << msg;
  // Sizes that would overflow or exhaust memory downstream.
  msg = msg_for("\"channels\": 4", "\"channels\": 4000000000");
  EXPECT_NE(msg.find("key 'channels' gives samples of"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more than the limit of 268435456"), std::string::npos) << msg;
  msg = msg_for("\"samples\": 5", "\"samples\": 9223372036854775800");
  EXPECT_NE(msg.find("overflows the sample count"), std::string::npos) << msg;
  msg = msg_for("\"channels\": 4", "\"channels\": 4e999");
  EXPECT_NE(msg.find("m.json' is not valid JSON"), std::string::npos) << msg;
  msg = msg_for("\"checksum\": \"0123456789abcdef\",", "");
  EXPECT_NE(msg.find("key 'shards[0].checksum' is missing"), std::string::npos) << msg;
  msg = msg_for("\"format_version\": 1", "\"format_version\": 2");
  EXPECT_NE(msg.find("format_version"), std::string::npos) << msg;
}

TEST(CacheStats, ChanMergeEqualsDirect) {
  const int64_t n = 103, e = 7;
  Tensor x = test::randn({n, e}, 5, 3.0);
  float* d = x.data<float>();
  for (int64_t i = 0; i < n * e; ++i)
    d[i] += 10.0f;  // offset mean: a naive sum-of-squares would lose digits
  std::vector<double> mean(e, 0), var(e, 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < e; ++i) mean[i] += d[r * e + i] / double(n);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < e; ++i)
      var[i] += (d[r * e + i] - mean[i]) * (d[r * e + i] - mean[i]) / double(n);
  // Uneven pieces, merged in a tree as MPI ranks would.
  const int64_t cuts[] = {0, 1, 2, 30, 31, 77, 103};
  std::vector<RunningStats> parts;
  for (int k = 0; k + 1 < 7; ++k) {
    RunningStats s(e);
    s.add(d + cuts[k] * e, cuts[k + 1] - cuts[k]);
    parts.push_back(RunningStats::unpack(s.pack()));  // through the MPI wire form
  }
  RunningStats left = parts[0], right = parts[3];
  left.merge(parts[1]);
  left.merge(parts[2]);
  right.merge(parts[4]);
  right.merge(parts[5]);
  left.merge(right);
  RunningStats whole(e);
  whole.add(d, n);
  EXPECT_EQ(left.count(), n);
  auto v = left.variance(), vw = whole.variance();
  for (int64_t i = 0; i < e; ++i) {
    // Double accumulation of f32 inputs: agreement to ~1e-12 relative; 1e-10 leaves margin.
    EXPECT_NEAR(left.mean()[i], mean[i], 1e-10 * std::abs(mean[i]));
    EXPECT_NEAR(v[i], var[i], 1e-10 * var[i]);
    EXPECT_NEAR(vw[i], var[i], 1e-10 * var[i]);
  }
  RunningStats empty(e);
  empty.merge(RunningStats(e));
  EXPECT_EQ(empty.count(), 0);
}

TEST(CacheStats, SaveLoad) {
  RunningStats s(6);
  float rows[12] = {1, 2, 3, 4, 5, 6, 3, 2, 1, 0, -1, -2};
  s.add(rows, 2);
  std::string dir = test::make_temp_dir("stats");
  save_stats(dir + "/stats.safetensors", s, 2, 3);
  CacheStats l = load_stats(dir + "/stats.safetensors");
  EXPECT_EQ(l.count, 2);
  ASSERT_EQ(l.mean.shape(), (Shape{2, 3}));
  EXPECT_FLOAT_EQ(l.mean.item(0), 2.0f);
  EXPECT_FLOAT_EQ(l.var.item(0), 1.0f);
  EXPECT_FLOAT_EQ(l.mean.item(5), 2.0f);
  EXPECT_FLOAT_EQ(l.var.item(5), 16.0f);
  std::string msg = error_of([&] { load_stats(dir + "/nope.safetensors"); });
  EXPECT_NE(msg.find("nope.safetensors"), std::string::npos) << msg;
}
