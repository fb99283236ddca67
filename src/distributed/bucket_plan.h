// Where a model's parameters live under sharding: a pure function of the parameter groups' sizes,
// which groups are blocks, the shard count and the bucket size, so every rank computes the same
// plan (and a checkpoint writer can list what any rank owns).
//
// Segments: each parameter group (a block, or a root group such as the embedders) gets one
// contiguous buffer, the unit that is gathered before use and released after (full_shard) and
// whose gradients are reduced when its backward is done.
// Buckets: each segment is cut into equal buckets of at most `bucket_numel` elements (at least
// one shard quantum, shards * 16; Megatron-style
// size-based buckets: a 2048-wide DiT^DH head block of 75M parameters is several collectives,
// not one), each padded so that it splits into `shards` equal shards of a multiple of 16
// elements. Rank r owns shard r of every bucket: elements [r * shard_numel, (r+1) * shard_numel)
// of the bucket. Padding sits at the end of each bucket and stays zero.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace rae::distributed {

struct BucketPlan {
  struct Segment {
    int group = -1;     // the parameter group it holds
    int block = -1;     // its block index, or -1 for a root group
    int64_t numel = 0;  // buffer size: the group plus its buckets' padding
    int first_bucket = 0, num_buckets = 0;
  };
  struct Bucket {
    int segment = 0;
    int64_t offset = 0;       // first element in the segment buffer (= in the group)
    int64_t numel = 0;        // group elements it holds
    int64_t padded = 0;       // numel rounded up to shards * shard_numel
    int64_t shard_numel = 0;  // elements per shard
  };
  int shards = 1;
  int64_t bucket_numel = 0;
  std::vector<Segment> segments;    // one per group, in group order
  std::vector<Bucket> buckets;      // segment by segment
  std::vector<int> block_segments;  // block k -> its segment

  // The group elements of shard r of bucket b: [first, first + count) of the group, stored from
  // the start of the shard (the rest of the shard is padding).
  struct Owned {
    int64_t first = 0, count = 0;
  };
  Owned owned(int b, int r) const;
};

// `group_numel[g]`: elements of group g; `block_groups[k]`: the group of block k (increasing).
BucketPlan make_bucket_plan(const std::vector<int64_t>& group_numel,
                            const std::vector<int>& block_groups, int shards, int64_t bucket_numel);

}  // namespace rae::distributed
