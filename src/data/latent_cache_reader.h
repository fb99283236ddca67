// Streaming, shuffled, rank-sharded reader of a latent cache.
//
// Order. Each epoch visits every sample in a permutation that depends only on (seed, epoch,
// manifest, block_rows, window_blocks), never on the rank count:
//   1. the samples of each shard are cut into blocks of `block_rows` consecutive rows (blocks never
//      cross shards); the blocks of the whole cache are permuted (Fisher-Yates, RNG purpose
//      Shuffle, step = epoch, index 0);
//   2. the resulting sequence is cut into windows of window_blocks * block_rows samples and each
//      window is permuted in place (Fisher-Yates, index 1 + window number).
// With block_rows = 1 this is a uniform random permutation. Larger blocks make reads longer runs;
// the default picks the smallest block of at least kBlockTargetBytes (one row for DINOv2-sized
// latents, so real caches get a full shuffle).
//
// Batches. Step s of an epoch is the slice [s*GB, (s+1)*GB) of the permutation; rank r of W takes
// the contiguous part [r*GB/W, (r+1)*GB/W). Steps per epoch = floor(total / GB); the remainder is
// skipped that epoch (another epoch's permutation places it elsewhere). The position (epoch, step)
// fully defines what the next batch holds, so restoring it restores the data stream exactly.
//
// Reading. Background threads assemble up to `prefetch` batches ahead. For each batch, the needed
// rows are sorted per shard and view and read as runs of consecutive rows (small gaps are read
// through), with shard files kept open; bf16/f16 are converted to f32.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/latent_cache_manifest.h"
#include "tensor/tensor.h"

namespace rae::cache {

constexpr size_t kBlockTargetBytes = 256 << 10;

struct ReaderOptions {
  int64_t global_batch = 0;  // GB, samples per step over all ranks
  int rank = 0;
  int world_size = 1;
  int64_t micro_batch = 0;  // 0: one micro-batch = the whole local batch
  uint64_t seed = 0;
  bool shuffle = true;     // false: cache order (for tools and tests)
  int64_t block_rows = 0;  // 0: automatic (see above)
  int64_t window_blocks = 16;
  bool use_flip = true;   // with latents_flip in the cache, pick a view per sample (RNG Flip)
  int prefetch = 4;       // batches assembled ahead
  int threads = 2;        // reader threads
  bool direct_io = true;  // false: read through H5Dread (slower; for tests)
};

// Where the data stream is: the next batch is step `step` of epoch `epoch`.
struct DataPosition {
  int64_t epoch = 0;
  int64_t step = 0;
  bool operator==(const DataPosition& o) const { return epoch == o.epoch && step == o.step; }
};

struct Batch {
  DataPosition position;  // the step this batch is
  Tensor latents;         // f32 (b, H*W, C)
  Tensor labels;          // i32 (b)
  Tensor indices;         // i64 (b) global sample ids (key per-sample noise by these)
  Tensor flipped;         // u8 (b) 1 where latents come from latents_flip
  int64_t micro_batch = 0;
  double wait_seconds = 0;  // time next() blocked waiting for this batch
  double read_seconds = 0;  // time a reader thread spent assembling it

  int64_t size() const { return labels.defined() ? labels.dim(0) : 0; }
  int64_t num_micro() const { return micro_batch > 0 ? size() / micro_batch : 1; }
  Batch micro(int64_t i) const;  // views of micro-batch i
};

class LatentCacheReader {
 public:
  LatentCacheReader(const std::string& dir, const ReaderOptions& options, DataPosition start = {});
  ~LatentCacheReader();
  LatentCacheReader(const LatentCacheReader&) = delete;
  LatentCacheReader& operator=(const LatentCacheReader&) = delete;

  Batch next();                   // blocks until the batch at position() is ready
  DataPosition position() const;  // the batch the next call to next() returns
  void seek(DataPosition pos);    // drops prefetched batches and restarts there

  const Manifest& manifest() const;
  const ReaderOptions& options() const;
  int64_t steps_per_epoch() const;
  int64_t local_batch() const;
  int64_t block_rows() const;  // the effective block size
  // Everything besides the position that determines the data stream (seed, global batch, block
  // and window sizes, shuffle and flip switches, sample count), as one string. The trainer's
  // checkpoint stores it (with the manifest's XXH64, train/data_source.h) beside position(); a
  // resume compares them so that a changed setting is an error, not a silently different stream.
  // Independent of rank, world size, threads and prefetch.
  std::string order_signature() const;
  // The epoch's global order of sample ids (the permutation, all ranks).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Whether the reader would deliver sample `index` flipped in `epoch`.
  bool flip_of(int64_t epoch, int64_t index) const;
  // Direct random access (no prefetch): samples `indices` as f32 (n, H*W, C).
  Tensor read_samples(const std::vector<int64_t>& indices, bool flipped = false) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The permutation defined above, exposed for tests and tools.
std::vector<int64_t> cache_epoch_order(const Manifest& m, uint64_t seed, int64_t epoch,
                                       int64_t block_rows, int64_t window_blocks,
                                       bool shuffle = true);
// The automatic block size for a layout.
int64_t auto_block_rows(const LatentLayout& layout);

}  // namespace rae::cache
