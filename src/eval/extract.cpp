#include "eval/extract.h"

#include <cmath>
#include <cstring>
#include <future>
#include <vector>

#include "core/error.h"
#include "eval/gather.h"
#include "eval/progress.h"

namespace rae::eval {

namespace {

// Rows folded into the moments per dsyrk pass: large enough for an efficient BLAS-3 call, small
// enough that the float32 staging buffers stay at a few tens of MB.
constexpr int64_t kMomentChunk = 2048;

// Rows of one feature kind: staged for the moments, and/or kept for gathering.
class FeatureSink {
 public:
  FeatureSink(int64_t width, bool stats, bool keep)
      : width_(width), stats_(stats && width > 0), keep_(keep && width > 0) {
    if (stats_) moments_ = FeatureMoments(width);
  }
  void add(const Tensor& rows) {  // (n, width) F32 CPU contiguous
    const float* p = rows.data<float>();
    const size_t n = static_cast<size_t>(rows.numel());
    if (keep_) kept_.insert(kept_.end(), p, p + n);
    if (stats_) {
      staged_.insert(staged_.end(), p, p + n);
      if (static_cast<int64_t>(staged_.size()) >= kMomentChunk * width_) flush();
    }
  }
  void flush() {
    if (!stats_ || staged_.empty()) return;
    moments_.add(staged_.data(), static_cast<int64_t>(staged_.size()) / width_);
    staged_.clear();
  }
  FeatureMoments& moments() { return moments_; }
  Tensor kept() const {
    Tensor t =
        Tensor::empty({static_cast<int64_t>(kept_.size()) / std::max<int64_t>(width_, 1), width_});
    std::copy(kept_.begin(), kept_.end(), t.data<float>());
    return t;
  }

 private:
  int64_t width_;
  bool stats_, keep_;
  FeatureMoments moments_;
  std::vector<float> staged_, kept_;
};

// Checks one batch's features: shape, and every value finite (a NaN would poison the moments
// without saying where it came from).
void check_batch(const Tensor& t, int64_t rows, int64_t width, const char* what,
                 const FeatureSource& src, int64_t begin) {
  RAE_CHECK(t.defined() && t.ndim() == 2 && t.dim(0) == rows && t.dim(1) == width &&
                t.dtype() == DType::F32 && !t.is_cuda(),
            "'", src.path(), "': ", what, " features of rows [", begin, ", ", begin + rows,
            ") are ", t.defined() ? t.str() : "missing", ", expected f32(", rows, ", ", width,
            ") on cpu");
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    RAE_CHECK(std::isfinite(p[i]), "'", src.path(), "': ", what, " feature ", i % width, " of row ",
              begin + i / width, " is not finite");
}

Tensor contiguous(const Tensor& t) {
  return !t.defined() || t.is_contiguous() ? t : t.clone();
}

FeatureMoments merge_over_ranks(distributed::Communicator* comm, const FeatureMoments& mine,
                                int64_t dim) {
  if (!comm || comm->size() == 1) return mine;
  Tensor packed = mine.pack();
  Tensor all = all_gather_rows(comm, packed.view({1, packed.numel()}));
  FeatureMoments merged(dim);
  for (int r = 0; r < comm->size(); ++r)  // rank order: the same merge on every rank
    merged.merge(FeatureMoments::unpack(all.select(0, r), dim));
  return merged;
}

}  // namespace

FeatureExtractor& LazyExtractor::get() {
  if (!ex_) {
    RAE_CHECK(factory_ != nullptr, "image inputs need a feature extractor (--inception)");
    ex_ = factory_();
  }
  return *ex_;
}

std::string LazyExtractor::identity_json() const {
  return ex_ ? ex_->identity_json() : "null";
}

FeatureWidths source_widths(const FeatureSource& src, LazyExtractor& ex) {
  return src.has_images() ? ex.get().widths() : src.widths();
}

Extracted extract_features(const FeatureSource& src, const ExtractRequest& req, LazyExtractor& ex,
                           distributed::Communicator* comm) {
  RAE_CHECK(req.batch > 0, "--batch must be positive, got ", req.batch);
  const int rank = comm ? comm->rank() : 0, size = comm ? comm->size() : 1;
  const int64_t n = src.size();
  const int64_t n_batches = (n + req.batch - 1) / req.batch;
  const auto [b0, b1] = rank_share(n_batches, rank, size);
  const int64_t r0 = std::min(b0 * req.batch, n), r1 = std::min(b1 * req.batch, n);
  const FeatureWidths w = source_widths(src, ex);
  RAE_CHECK(!req.stats || w.spatial > 0, "'", src.path(),
            "' has no 'spatial' features (needed for the sFID statistics)");
  RAE_CHECK(!req.keep_logits || w.logits > 0, "'", src.path(),
            "' has no 'logits' (needed for the Inception Score)");

  FeatureSink pool(w.pool, req.stats, req.keep_pool);
  FeatureSink spatial(w.spatial, req.stats, req.keep_spatial);
  FeatureSink logits(w.logits, false, req.keep_logits);
  ProgressBar bar(req.label, n, r1 - r0, rank == 0, req.progress_seconds);
  // Image batches: the next one is read while this one runs through the network.
  auto read = [&](int64_t begin) {
    return std::async(std::launch::async, [&src, begin, r1, &req] {
      return src.images(begin, std::min(req.batch, r1 - begin));
    });
  };
  std::future<Tensor> next;
  if (src.has_images() && r0 < r1) next = read(r0);
  for (int64_t begin = r0; begin < r1; begin += req.batch) {
    const int64_t rows = std::min(req.batch, r1 - begin);
    BatchFeatures f;
    if (src.has_images()) {
      Tensor images = next.get();
      if (begin + rows < r1) next = read(begin + rows);
      f = ex.get().extract(images);
    } else {
      f = src.features(begin, rows);
    }
    f.pool = contiguous(f.pool);
    check_batch(f.pool, rows, w.pool, "pool", src, begin);
    pool.add(f.pool);
    if (req.stats || req.keep_spatial) {
      f.spatial = contiguous(f.spatial);
      check_batch(f.spatial, rows, w.spatial, "spatial", src, begin);
      spatial.add(f.spatial);
    }
    if (req.keep_logits) {
      f.logits = contiguous(f.logits);
      check_batch(f.logits, rows, w.logits, "logits", src, begin);
      logits.add(f.logits);
    }
    bar.update(begin + rows - r0);
  }
  pool.flush();
  spatial.flush();
  bar.finish();

  Extracted out;
  out.count = n;
  out.widths = w;
  if (req.stats) {
    out.pool_moments = merge_over_ranks(comm, pool.moments(), w.pool);
    out.spatial_moments = merge_over_ranks(comm, spatial.moments(), w.spatial);
    RAE_CHECK(out.pool_moments.count() == n, "feature statistics cover ", out.pool_moments.count(),
              " of ", n, " rows of '", src.path(), "'");
  }
  if (req.keep_pool) out.pool = all_gather_rows(comm, pool.kept());
  if (req.keep_spatial) out.spatial = all_gather_rows(comm, spatial.kept());
  if (req.keep_logits) out.logits = all_gather_rows(comm, logits.kept());
  return out;
}

}  // namespace rae::eval
