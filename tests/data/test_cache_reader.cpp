// LatentCacheReader: deterministic epoch permutation, rank sharding independent of world size,
// exact restore of the data position, prefetch correctness, flips, micro-batches, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "data/latent_cache_reader.h"
#include "data/latent_cache_synth.h"
#include "support/util.h"

using namespace rae;
using namespace rae::cache;

namespace {

// 203 samples in shards of 50 (last shard 3): uneven on purpose.
const std::string& shared_cache(bool flip) {
  static std::string dirs[2];
  std::string& dir = dirs[flip];
  if (dir.empty()) {
    dir = test::make_temp_dir(flip ? "reader-flip" : "reader");
    SynthOptions o;
    o.out = dir;
    o.samples = 203;
    o.grid_h = 2;
    o.grid_w = 2;
    o.channels = 3;
    o.classes = 5;
    o.shard_size = 50;
    o.flip = flip;
    write_synthetic_cache(o);
  }
  return dir;
}

ReaderOptions opts(int64_t gb, int rank = 0, int world = 1) {
  ReaderOptions o;
  o.global_batch = gb;
  o.rank = rank;
  o.world_size = world;
  o.seed = 1234;
  o.block_rows = 4;  // small blocks so that both shuffle levels matter
  o.window_blocks = 3;
  return o;
}

std::vector<int64_t> ids_of(const Batch& b) {
  return std::vector<int64_t>(b.indices.data<int64_t>(), b.indices.data<int64_t>() + b.size());
}

void expect_same_batch(const Batch& a, const Batch& b) {
  ASSERT_EQ(a.position, b.position);
  ASSERT_EQ(ids_of(a), ids_of(b));
  ASSERT_EQ(test::max_abs_diff(a.latents, b.latents), 0.0);
  for (int64_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a.labels.data<int32_t>()[k], b.labels.data<int32_t>()[k]);
    ASSERT_EQ(a.flipped.data<uint8_t>()[k], b.flipped.data<uint8_t>()[k]);
  }
}

}  // namespace

TEST(CacheReaderOrder, DeterministicPermutation) {
  Manifest m = Manifest::load(shared_cache(false));
  auto a = cache_epoch_order(m, 7, 3, 4, 3);
  EXPECT_EQ(a, cache_epoch_order(m, 7, 3, 4, 3));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 203; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_NE(a, cache_epoch_order(m, 7, 4, 4, 3));  // next epoch
  EXPECT_NE(a, cache_epoch_order(m, 8, 3, 4, 3));  // other seed
  auto id = cache_epoch_order(m, 7, 3, 4, 3, /*shuffle=*/false);
  for (int64_t i = 0; i < 203; ++i) ASSERT_EQ(id[i], i);
  // One block per window (shard sizes multiples of the block): every aligned group of 4 is one
  // block of 4 consecutive ids, shuffled inside.
  Manifest even = m;
  even.shards = {{"a.h5", 48, 0, 0, ""}, {"b.h5", 8, 48, 0, ""}};
  even.total_samples = 56;
  auto w1 = cache_epoch_order(even, 7, 0, 4, 1);
  bool any_inner_shuffle = false;
  for (int64_t pos = 0; pos < 56; pos += 4) {
    std::vector<int64_t> got(w1.begin() + pos, w1.begin() + pos + 4);
    any_inner_shuffle |= !std::is_sorted(got.begin(), got.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got[0] % 4, 0) << "window at " << pos;
    for (int64_t j = 0; j < 4; ++j) ASSERT_EQ(got[j], got[0] + j) << "window at " << pos;
  }
  EXPECT_TRUE(any_inner_shuffle);
  // block_rows = 1: a plain uniform permutation; far from the identity.
  auto u = cache_epoch_order(m, 7, 0, 1, 16);
  int64_t fixed = 0;
  for (int64_t i = 0; i < 203; ++i) fixed += u[i] == i;
  EXPECT_LT(fixed, 10);
}

TEST(CacheReader, EpochCoversDistinctSamplesAndReportsTimes) {
  LatentCacheReader r(shared_cache(false), opts(20));
  EXPECT_EQ(r.steps_per_epoch(), 10);  // 203 / 20, the remainder is skipped this epoch
  std::set<int64_t> seen;
  auto order = r.epoch_order(0);
  for (int s = 0; s < 10; ++s) {
    Batch b = r.next();
    EXPECT_EQ(b.position, (DataPosition{0, s}));
    EXPECT_GE(b.wait_seconds, 0.0);
    EXPECT_GT(b.read_seconds, 0.0);
    for (int64_t k = 0; k < 20; ++k) {
      ASSERT_EQ(b.indices.data<int64_t>()[k], order[s * 20 + k]);
      seen.insert(b.indices.data<int64_t>()[k]);
    }
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_EQ(r.position(), (DataPosition{1, 0}));
  EXPECT_EQ(r.next().position, (DataPosition{1, 0}));
}

TEST(CacheReader, RankUnionIsTheGlobalSliceFor124Ranks) {
  const int64_t gb = 16;
  std::vector<Batch> global;
  {
    LatentCacheReader r(shared_cache(true), opts(gb));
    for (int s = 0; s < 15; ++s)
      global.push_back(r.next());  // crosses into epoch 1 (12 steps/epoch)
  }
  for (int world : {2, 4}) {
    std::vector<std::unique_ptr<LatentCacheReader>> ranks;
    for (int r = 0; r < world; ++r)
      ranks.push_back(std::make_unique<LatentCacheReader>(shared_cache(true), opts(gb, r, world)));
    for (int s = 0; s < 15; ++s) {
      std::vector<int64_t> ids;
      const int64_t local = gb / world;
      for (int r = 0; r < world; ++r) {
        Batch b = ranks[r]->next();
        ASSERT_EQ(b.size(), local);
        ASSERT_EQ(b.position, global[s].position);
        for (int64_t k = 0; k < local; ++k) {
          int64_t g = r * local + k;
          ASSERT_EQ(b.indices.data<int64_t>()[k], global[s].indices.data<int64_t>()[g]);
          ASSERT_EQ(b.labels.data<int32_t>()[k], global[s].labels.data<int32_t>()[g]);
          ASSERT_EQ(b.flipped.data<uint8_t>()[k], global[s].flipped.data<uint8_t>()[g]);
        }
        ASSERT_EQ(test::max_abs_diff(b.latents, global[s].latents.narrow(0, r * local, local)),
                  0.0);
      }
    }
  }
}

TEST(CacheReader, RestoresThePositionExactly) {
  const std::string& dir = shared_cache(true);
  LatentCacheReader a(dir, opts(24));  // 8 steps per epoch
  std::vector<Batch> run;
  DataPosition saved;
  for (int s = 0; s < 12; ++s) {
    if (s == 6) saved = a.position();  // what a checkpoint stores
    run.push_back(a.next());
  }
  EXPECT_EQ(saved, (DataPosition{0, 6}));
  LatentCacheReader b(dir, opts(24), saved);  // a resumed run
  for (int s = 6; s < 12; ++s) expect_same_batch(b.next(), run[s]);
  // The signature does not depend on the rank split or threads, and changes with the order.
  ReaderOptions other = opts(24, 1, 2);
  other.threads = 3;
  EXPECT_EQ(LatentCacheReader(dir, other).order_signature(), a.order_signature());
  other.window_blocks = 5;
  EXPECT_NE(LatentCacheReader(dir, other).order_signature(), a.order_signature());
  a.seek({1, 1});
  expect_same_batch(a.next(), run[9]);
  EXPECT_THROW(a.seek({0, 8}), Error);  // step beyond the epoch
}

TEST(CacheReader, PrefetchDeliversTheSameBatchesAsSerialReading) {
  const std::string& dir = shared_cache(true);
  ReaderOptions serial = opts(10);
  serial.threads = 1;
  serial.prefetch = 1;
  ReaderOptions ahead = opts(10);
  ahead.threads = 3;
  ahead.prefetch = 8;
  ReaderOptions via_hdf5 = ahead;
  via_hdf5.direct_io = false;
  LatentCacheReader a(dir, serial), b(dir, ahead), c(dir, via_hdf5);
  for (int s = 0; s < 45; ++s) {  // 2+ epochs of 20 steps
    Batch x = a.next(), y = b.next(), z = c.next();
    expect_same_batch(x, y);
    expect_same_batch(x, z);
    // Each slot holds its own sample (and view).
    for (int64_t k = 0; k < x.size(); ++k) {
      int64_t g = x.indices.data<int64_t>()[k];
      bool f = x.flipped.data<uint8_t>()[k];
      ASSERT_EQ(f, a.flip_of(x.position.epoch, g));
      Tensor want = a.read_samples({g}, f);
      ASSERT_EQ(test::max_abs_diff(x.latents.narrow(0, k, 1), want), 0.0)
          << "step " << s << " slot " << k;
    }
  }
}

TEST(CacheReader, FlipsFollowTheRngAndCanBeDisabled) {
  const std::string& dir = shared_cache(true);
  LatentCacheReader r(dir, opts(200));
  Batch b = r.next();
  int64_t flipped = 0;
  for (int64_t k = 0; k < 200; ++k) flipped += b.flipped.data<uint8_t>()[k];
  EXPECT_GT(flipped, 60);  // about half of 200
  EXPECT_LT(flipped, 140);
  ReaderOptions o = opts(200);
  o.use_flip = false;
  LatentCacheReader plain(dir, o);
  Batch p = plain.next();
  EXPECT_EQ(ids_of(p), ids_of(b));  // flips do not change the order
  for (int64_t k = 0; k < 200; ++k) ASSERT_EQ(p.flipped.data<uint8_t>()[k], 0);
}

TEST(CacheReader, MicroBatches) {
  ReaderOptions o = opts(24, 1, 2);
  o.micro_batch = 4;
  LatentCacheReader r(shared_cache(false), o);
  Batch b = r.next();
  ASSERT_EQ(b.num_micro(), 3);
  for (int i = 0; i < 3; ++i) {
    Batch m = b.micro(i);
    ASSERT_EQ(m.size(), 4);
    for (int64_t k = 0; k < 4; ++k)
      ASSERT_EQ(m.indices.data<int64_t>()[k], b.indices.data<int64_t>()[i * 4 + k]);
    ASSERT_EQ(test::max_abs_diff(m.latents, b.latents.narrow(0, i * 4, 4)), 0.0);
  }
  EXPECT_THROW(b.micro(3), Error);
}

TEST(CacheReader, BadOptionsAreExplained) {
  const std::string& dir = shared_cache(false);
  auto msg = [&](ReaderOptions o) -> std::string {
    try {
      LatentCacheReader r(dir, o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(msg(opts(10, 0, 4)).find("divisible by the world size 4"), std::string::npos);
  EXPECT_NE(msg(opts(300)).find("fewer than one global batch"), std::string::npos);
  EXPECT_NE(msg(opts(8, 2, 2)).find("rank 2"), std::string::npos);
  ReaderOptions o = opts(8);
  o.micro_batch = 3;
  EXPECT_NE(msg(o).find("micro-batch 3"), std::string::npos);
}

TEST(CacheReader, ReadErrorsSurfaceInNextNamingTheShard) {
  std::string dir = test::make_temp_dir("reader-trunc");
  SynthOptions s;
  s.out = dir;
  s.samples = 64;
  s.grid_h = s.grid_w = 4;
  s.channels = 16;
  s.shard_size = 64;
  Manifest m = write_synthetic_cache(s);
  ReaderOptions o = opts(64);
  o.prefetch = 1;
  o.threads = 1;
  LatentCacheReader r(dir, o);
  r.next();
  std::filesystem::resize_file(dir + "/" + m.shards[0].file, 4096);  // damaged while training
  r.seek({0, 0});
  try {
    r.next();
    FAIL() << "expected a read error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(m.shards[0].file), std::string::npos) << e.what();
  }
}
