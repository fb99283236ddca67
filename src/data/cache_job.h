// The latent-cache job (`rae cache`): encodes an ImageFolder tree with a frozen encoder into an
// HDF5 latent cache (data/latent_cache_*).
//
// Roles. Rank 0 lists the tree, builds the deterministic sorted index, cuts it into shards of
// `shard_size` images and hands shard ids to worker ranks from a queue (request/assign messages),
// so a slow rank simply takes fewer shards. With one rank, rank 0 does the work itself.
// Workers decode on a oneTBB pipeline (read -> decode/crop/resize, in parallel -> batch), encode
// the plain and the horizontally flipped view of each batch, and write the shard with ShardWriter
// (tmp + fsync + rename).
//
// Restart. cache_job.json in the output directory records the job's settings and every finished
// shard (file, size, xxh64). A rerun with the same settings verifies the recorded shards (size and
// checksum) and skips them; anything missing, truncated or corrupt is written again: that is a
// resume, not an overwrite. Different settings are an error naming the setting. A non-empty
// output directory without cache_job.json (another cache, other files) is an error. `overwrite`
// (--overwrite) starts over in any case: the cache files in the directory are removed first
// (data/output_dir.h), other files are kept.
//
// Statistics. Per-element mean and variance of the stored plain latents: every shard's statistics
// are accumulated row by row from its stored values (cache::StatsAccumulator: by its writer for a
// fresh shard, from the file for a skipped one, with the same result), sent to rank 0 and merged
// in shard order with Chan's formula, so the result does not depend on the rank count or on
// restarts.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace rae::distributed {
class MpiCommunicator;
}

namespace rae::cachejob {

struct CacheJobOptions {
  std::string data_dir;
  std::string encoder = "tiny-random";  // HF model directory or preset
  std::string out_dir;
  std::string split = "train";
  std::string label_file;  // flat validation splits
  int image_size = 256;    // ADM center crop
  int encoder_input = 0;   // 0: the encoder family's default (224 DINOv2, 256 SigLIP/MAE)
  int64_t shard_size = 1000;
  std::string dtype = "bf16";
  int batch = 32;              // images per encoder forward (each forward runs 2x: plain + flip)
  bool flip = true;            // also store the horizontally flipped view
  int threads = 0;             // oneTBB threads per rank (0: all cores)
  std::string device = "cpu";  // encoder device: cpu, cuda (rank r uses GPU r % count), cuda:N
  double progress_seconds = 10;
  int64_t limit = 0;       // encode only the first `limit` images (0: all); for smoke runs
  bool overwrite = false;  // discard a cache in out_dir instead of resuming it
};

struct CacheJobResult {
  int64_t images = 0;
  int64_t shards_total = 0, shards_written = 0, shards_skipped = 0;
  double seconds = 0;
  // One process only: the encoder forwards' device time (CUDA events; host time on the CPU),
  // so encode_busy_s / seconds is the fraction of the job the GPU spent encoding.
  double encode_busy_s = 0;
};

// Runs the job over `world` (MpiCommunicator::create_world; a single process works). Every rank
// calls it; the result is meaningful on rank 0. Every wait for another rank (broadcasts, the
// coordinator's requests and assignments) is guarded by the watchdog, so a dead or stuck rank
// ends the job after its timeout instead of hanging it. Errors on any rank abort the job with a
// message naming the rank and the file.
CacheJobResult run_cache_job(const CacheJobOptions& opts, distributed::MpiCommunicator& world);

constexpr const char* kJobFile = "cache_job.json";

// `rae cache --benchmark`: one process, the job's options over its image tree, measured three
// ways (docs/perf/device/README.md):
//   decode_images_per_s   the oneTBB decode pipeline alone (read, decode, crop, flip, resize,
//                         normalize on all cores; nothing encoded): the decode-bound rate
//   encode_images_per_s   the encoder alone on device-resident random batches of opts.batch
//                         images (both views with flips): the encoder-bound rate
//   end_to_end_images_per_s, gpu_busy_fraction   the real job (--overwrite) with its encode
//                         pipeline; GPU-busy = the forwards' CUDA-event time / the job's wall time
// plus the projection to ImageNet-1k train on one 8-GPU node (see the JSON's note). Returns the
// report; `json_path` (if not empty) gets it too.
nlohmann::json run_cache_benchmark(const CacheJobOptions& opts, distributed::MpiCommunicator& world,
                                   const std::string& json_path);

}  // namespace rae::cachejob
