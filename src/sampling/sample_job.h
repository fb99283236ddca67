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
//                            input (its evaluator.py and the release's src/eval/fid.py read it),
//                            and labels: i32 (N), the class of each (`rae eval agreement`)
//   grid.png                 one row per class (the first --grid-rows classes, --grid-cols each)
//   latents.npz              "latents" f32 (N, T, C) as sampled (normalised when the model was
//                            trained on normalised latents), "labels" i32 (N), and the
//                            statistics that de-normalise them ("latent_stats.mean",
//                            "latent_stats.var" f32 (T, C), "latent_stats.eps" f64 (1)) when
//                            the job has any; kept with --save-latents or without a decoder
//                            (`rae decode --latents` reads the statistics from it)
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "diffusion/samplers.h"
#include "distributed/communicator.h"
#include "sampling/model_source.h"
#include "tensor/tensor.h"

namespace rae::sampling {

struct SampleJobOptions {
  ModelSource model;        // any models::Denoiser (sampling/model_source.h)
  ModelSource guide_model;  // AutoGuidance guide; arg "" = none
  ModelSource decoder;      // arg "" = no decoding (latents only)
  // The statistics that turn samples into encoder latents: "" = those the model file carries
  // (none there: the model works on raw latents), "none" = none, else a statistics file
  // (sampling/decode.h load_latent_stats) overriding the model's.
  std::string stats_path;
  std::string pixel_norm;  // "imagenet" / "siglip"; "" = the decoder config's
  std::string out_dir;
  std::string noise_file;  // initial (and SDE) noise instead of the RNG
  // The samples: explicit labels (one per sample, global order), or num_per_class > 0 samples of
  // each of `classes` (class-major; empty: every class of the model), the grid's rows.
  std::vector<int32_t> labels;
  std::vector<int32_t> classes;
  int64_t num_per_class = 0;
  // sampler.shift is set from the model: time_shift(shift_dim, shift_base), shift_dim 0 = the
  // model's tokens x channels; guidance.null_label likewise (the model's num_classes).
  double shift_base = 4096;
  int64_t shift_dim = 0;
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
