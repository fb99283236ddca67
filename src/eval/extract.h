// Features of a whole source, computed across ranks:
// - the source's rows are cut into global batches of `batch` rows; rank r takes a contiguous run
//   of batches (rank_share), so a batch is the same images whatever the rank count (and the
//   network sees the same batch compositions);
// - each rank folds its rows into float64 moments (feature_stats.h) in chunks, and keeps the rows
//   the caller asked for (pool features for precision/recall, logits for IS);
// - moments are merged in rank order and kept rows gathered in global order, on every rank.
// Image batches are read (decoded) on a helper thread while the extractor runs on the previous one.
#pragma once
#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "eval/extractor.h"
#include "eval/feature_source.h"
#include "eval/feature_stats.h"

namespace rae::eval {

// The extractor, created on first use (precomputed features never need it).
class LazyExtractor {
 public:
  explicit LazyExtractor(ExtractorFactory factory) : factory_(std::move(factory)) {}
  FeatureExtractor& get();
  bool created() const { return ex_ != nullptr; }
  std::string identity_json() const;  // "null" when never created

 private:
  ExtractorFactory factory_;
  std::unique_ptr<FeatureExtractor> ex_;
};

struct ExtractRequest {
  std::string label;  // progress bar: "samples", "reference"
  bool stats = true;  // pool and spatial moments
  bool keep_pool = false, keep_spatial = false, keep_logits = false;
  int64_t batch = 200;
  double progress_seconds = 10;
};

struct Extracted {
  int64_t count = 0;
  FeatureWidths widths;
  FeatureMoments pool_moments, spatial_moments;  // merged over ranks (when stats)
  Tensor pool, spatial, logits;                  // all rows in global order (when kept)
};

// The widths `src` produces: its stored widths, or the extractor's for images (created here).
FeatureWidths source_widths(const FeatureSource& src, LazyExtractor& ex);

// Collective over `comm` (null: one process): every rank calls it with the same arguments.
Extracted extract_features(const FeatureSource& src, const ExtractRequest& req, LazyExtractor& ex,
                           distributed::Communicator* comm);

}  // namespace rae::eval
