// The distributed sampling job behind `mpirun -np N rae sample`.
//
// Samples are numbered 0..N-1 in a fixed global order (class-major for --classes x
// --num-per-class). Sample g's label is labels[g] and its noise the counter-RNG stream keyed by
// (seed, g) (sampling/noise.h), so WHICH images come out does not depend on the number of ranks
// or the batch size. The index space is cut into chunks of `chunk` consecutive samples; chunk c
// belongs to rank c % world and is sampled in batches of at most `batch` samples of that chunk,
// so a chunk's batches are the same on any number of ranks and the outputs are byte-identical
// on the CPU for 1 or N ranks.
//
// Output directory (a shared filesystem across ranks):
//   job.json                 the settings that determine the images; a rerun with other
//                            settings is refused (never mixes two jobs), a rerun with the same
//                            ones resumes. "complete": true once the outputs below are written.
//   chunks/chunk-NNNNNN.safetensors   per chunk: "images" u8 (n, S, S, 3), "labels" i32 (n),
//                            "latents" f32 (n, T, C) (when kept), metadata first/count/job;
//                            written atomically, so a killed job keeps every finished chunk and
//                            a rerun continues with the missing ones.
//   png/GGGGGG.png           optional per-sample PNGs (global index, 6+ digits, as the release)
//   samples.npz              arr_0: u8 (N, S, S, 3) in global order, the ADM evaluation suite's
//                            input (its evaluator.py and the release's src/eval/fid.py read it)
//   grid.png                 one row per class (the first --grid-rows classes, --grid-cols each)
//   latents.safetensors      "latents" f32 (N, T, C), "labels" i32 (N), when kept
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "diffusion/samplers.h"
#include "distributed/communicator.h"
#include "tensor/tensor.h"

namespace rae::sampling {

struct SampleJobOptions {
  std::string model_path;        // DiT^DH safetensors (EMA weights: resolved by the caller)
  std::string guide_model_path;  // AutoGuidance guide (optional)
  std::string decoder;           // decoder safetensors or random:PRESET[:SEED]; "" = no decoding
  std::string stats_path;        // latent statistics, "" = none (no normalisation)
  std::string pixel_norm;        // "imagenet" / "siglip"; "" = the decoder config's
  std::string out_dir;
  std::string noise_file;       // initial (and SDE) noise instead of the RNG
  std::vector<int32_t> labels;  // one per sample, global order
  int64_t num_per_class = 0;    // > 0: labels are classes x num_per_class (the grid's rows)
  diffusion::SamplerOptions sampler;
  diffusion::Guidance guidance;
  uint64_t seed = 0;
  int64_t batch = 16;
  int64_t chunk = 0;  // samples per chunk file; 0: the batch
  bool png = false;
  bool keep_latents = false;
  std::string device = "cpu";      // cpu, cuda (GPU local rank % count), cuda:N
  std::string precision = "fp32";  // fp32, tf32, bf16 (CUDA)
  int grid_rows = 16, grid_cols = 8;
  double progress_seconds = 10;
  // Where this rank writes its timings (JSON: images, seconds per batch, images/s over all
  // batches and over the batches after the first, i.e. without warm-up), "" = none; with
  // several ranks each writes PATH.rankR.
  std::string report_path;
};

struct SampleJobResult {
  int64_t samples = 0;
  int64_t chunks = 0, chunks_resumed = 0, chunks_written = 0;  // chunks_written: by this rank
  std::string npz_path, grid_path;
};

// Runs (or resumes) the job on every rank of `world` (null: this process alone, no MPI); rank 0
// writes the final outputs. Throws with a message naming the file, option or rank on any problem.
SampleJobResult run_sample_job(const SampleJobOptions& opts, distributed::Communicator* world);

}  // namespace rae::sampling
