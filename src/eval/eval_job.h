// The evaluation jobs behind `rae eval` (run under mpirun -np N or alone):
//   run_eval:     samples + reference -> metrics.json (FID, sFID, IS, precision, recall);
//   run_stats:    images or features -> a reference .npz in the ADM layout;
//   run_features: images -> an .npz of pool/spatial/logits features.
// Every rank calls the same function; rank 0 writes the outputs (atomically).
#pragma once
#include <cstdint>
#include <string>

#include "distributed/communicator.h"
#include "eval/extractor.h"
#include "eval/feature_source.h"
#include "eval/inception_score.h"
#include "eval/precision_recall.h"
#include "nlohmann/json.hpp"

namespace rae::eval {

struct EvalJobOptions {
  std::string samples;         // .npz: arr_0 images, or pool/spatial/logits features
  std::string images_dir;      // a folder of images instead of `samples`
  std::string ref;             // reference .npz (run_eval)
  std::string out;             // metrics.json (run_eval) or .npz (run_stats, run_features)
  std::string device = "cpu";  // cpu, cuda (GPU = node-local rank % count), cuda:N
  // The network's F32 math on the GPU (ops::Precision): fp32 (default, the reference) or tf32
  // (TF32 tensor cores, as PyTorch runs torch-fidelity's convolutions by default).
  std::string precision = "fp32";
  int64_t batch = 200;  // images per network forward (global batches)
  int image_size = 0;   // folders: ADM center crop to this size (0: as decoded, one size per batch)
  int64_t ref_images = 10000;  // run_stats: images (or pool rows) kept for precision/recall
  int pr_k = 3;
  int64_t is_split_size = kAdmIsSplitSize;
  double progress_seconds = 10;
};

// The device this rank computes on.
Device eval_device(const std::string& spec, distributed::Communicator* comm);

// Returns the metrics JSON (on rank 0; empty on the others). Rank 0 also writes it to opts.out
// when set.
nlohmann::json run_eval(const EvalJobOptions& opts, const ExtractorFactory& factory,
                        distributed::Communicator* comm);
// The same for samples from any source (e.g. tensor_source of decoded reconstructions, for rFID);
// opts.samples / opts.images_dir are ignored.
nlohmann::json evaluate_samples(const FeatureSource& samples, const EvalJobOptions& opts,
                                const ExtractorFactory& factory, distributed::Communicator* comm);
void run_stats(const EvalJobOptions& opts, const ExtractorFactory& factory,
               distributed::Communicator* comm);
void run_features(const EvalJobOptions& opts, const ExtractorFactory& factory,
                  distributed::Communicator* comm);

}  // namespace rae::eval
