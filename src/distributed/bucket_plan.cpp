#include "distributed/bucket_plan.h"

#include <algorithm>

#include "core/error.h"

namespace rae::distributed {

namespace {
constexpr int64_t kShardAlign = 16;  // elements: shards start 64-byte aligned (F32)
int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}
}  // namespace

BucketPlan::Owned BucketPlan::owned(int b, int r) const {
  const Bucket& k = buckets.at(b);
  const int64_t lo = static_cast<int64_t>(r) * k.shard_numel;
  const int64_t hi = std::min(k.numel, lo + k.shard_numel);
  return {k.offset + lo, std::max<int64_t>(0, hi - lo)};
}

BucketPlan make_bucket_plan(const std::vector<int64_t>& group_numel,
                            const std::vector<int>& block_groups, int shards,
                            int64_t bucket_numel) {
  RAE_CHECK(shards >= 1, "bucket plan: ", shards, " shards");
  RAE_CHECK(bucket_numel >= 1, "bucket plan: bucket size ", bucket_numel, " must be >= 1");
  BucketPlan p;
  p.shards = shards;
  p.bucket_numel = bucket_numel;
  std::vector<int> block_of(group_numel.size(), -1);
  for (size_t k = 0; k < block_groups.size(); ++k) {
    const int g = block_groups[k];
    RAE_CHECK(g >= 0 && g < static_cast<int>(group_numel.size()), "bucket plan: block ", k,
              " is group ", g, " of ", group_numel.size());
    RAE_CHECK(k == 0 || g > block_groups[k - 1], "bucket plan: block groups must increase (block ",
              k, " is group ", g, ")");
    block_of[g] = static_cast<int>(k);
  }
  const int64_t quantum = static_cast<int64_t>(shards) * kShardAlign;
  for (size_t g = 0; g < group_numel.size(); ++g) {
    const int64_t n = group_numel[g];
    RAE_CHECK(n >= 1, "bucket plan: group ", g, " is empty");
    BucketPlan::Segment s;
    s.group = static_cast<int>(g);
    s.block = block_of[g];
    s.first_bucket = static_cast<int>(p.buckets.size());
    // The fewest buckets of at most bucket_numel elements (at least one quantum), made equal.
    const int64_t cap = std::max(quantum, bucket_numel / quantum * quantum);
    const int64_t count = (n + cap - 1) / cap;
    const int64_t size = round_up((n + count - 1) / count, quantum);
    for (int64_t off = 0; off < n; off += size) {
      BucketPlan::Bucket b;
      b.segment = static_cast<int>(p.segments.size());
      b.offset = off;
      b.numel = std::min(size, n - off);
      b.padded = round_up(b.numel, quantum);
      b.shard_numel = b.padded / shards;
      p.buckets.push_back(b);
      s.numel = off + b.padded;
    }
    s.num_buckets = static_cast<int>(p.buckets.size()) - s.first_bucket;
    if (s.block >= 0) {
      if (static_cast<int>(p.block_segments.size()) <= s.block)
        p.block_segments.resize(s.block + 1, -1);
      p.block_segments[s.block] = static_cast<int>(p.segments.size());
    }
    p.segments.push_back(s);
  }
  return p;
}

}  // namespace rae::distributed
