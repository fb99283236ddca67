// Writes one latent cache shard (HDF5). The shard is built in `<name>.h5.tmp` and becomes
// `<name>.h5` only in finish(), after a flush, fsync and checksum, so a crashed or killed writer
// never leaves a file that looks complete. Schema: docs/formats.md.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/latent_cache_manifest.h"
#include "data/latent_cache_stats.h"
#include "tensor/tensor.h"

namespace rae::cache {

// Target bytes per HDF5 chunk of `latents` (chunks hold whole samples; at least one sample).
constexpr size_t kChunkTargetBytes = 4 << 20;

// f32 -> bf16 bits of `count` values, identical to f32_to_bf16_bits (round to nearest even, NaN
// preserved) but vectorisable.
void f32_to_bf16_block(const float* src, uint16_t* bits, size_t count);

class ShardWriter {
 public:
  // `name` without extension; samples appended get global ids first_index, first_index + 1, ...
  // `expected_samples` (0: unknown) caps the chunk size so that small shards stay small.
  ShardWriter(const std::string& dir, const std::string& name, const LatentLayout& layout,
              int64_t first_index, int64_t expected_samples = 0);
  ~ShardWriter();  // an unfinished shard is closed and its .tmp file removed
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // latents: (n, H*W, C) or (n, H, W, C), contiguous CPU tensor of F32, BF16 or F16 (converted to
  // the storage dtype with round-to-nearest-even). latents_flip: the same shape when the layout
  // has flips, else an undefined Tensor. labels: (n) I32.
  void append(const Tensor& latents, const Tensor& latents_flip, const Tensor& labels);
  // Raw form: n samples of layout.elements() floats each; latents_flip may be null without flips.
  void append(const float* latents, const float* latents_flip, const int32_t* labels, int64_t n);

  int64_t samples() const;
  // Statistics of the stored (rounded) `latents` values appended so far (flips excluded).
  const RunningStats& stats() const;
  const std::string& final_path() const;

  // Closes, fsyncs, checksums and renames to <name>.h5; returns the manifest entry.
  ShardInfo finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a sequence of shards for one contiguous range of global ids, starting a new shard every
// `shard_size` samples. Shards are named <prefix><k, 5 digits>.h5. Used by `rae synth-cache` and,
// one per rank, by `rae cache` (each rank owns a contiguous id range; rank 0 then gathers the
// entries and the stats, merges them with RunningStats::merge and saves the manifest).
class ShardSetWriter {
 public:
  // `total_samples` (0: unknown) sizes the last shard's chunks to what it will hold.
  ShardSetWriter(const std::string& dir, const std::string& prefix, const LatentLayout& layout,
                 int64_t first_index, int64_t shard_size, int64_t total_samples = 0);
  // Same argument forms as ShardWriter::append; the samples may span shard boundaries.
  void append(const float* latents, const float* latents_flip, const int32_t* labels, int64_t n);
  void append(const Tensor& latents, const Tensor& latents_flip, const Tensor& labels);
  // Finishes the open shard; returns every shard's entry in order.
  std::vector<ShardInfo> finish();
  const RunningStats& stats() const { return stats_; }  // all finished shards' latents
  int64_t samples() const { return next_index_ - first_index_; }

 private:
  std::string dir_, prefix_;
  LatentLayout layout_;
  int64_t first_index_, next_index_, shard_size_, total_samples_;
  std::unique_ptr<ShardWriter> open_;
  std::vector<ShardInfo> done_;
  RunningStats stats_;
  void close_open();
};

}  // namespace rae::cache
