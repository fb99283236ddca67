#include "eval/eval_job.h"

#include <chrono>
#include <cstring>
#include <future>

#include "core/error.h"
#include "core/log.h"
#include "data/latent_cache_manifest.h"
#include "eval/extract.h"
#include "eval/frechet.h"
#include "eval/reference.h"
#include "io/npz.h"

namespace rae::eval {

namespace {

using json = nlohmann::json;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::unique_ptr<FeatureSource> open_samples(const EvalJobOptions& o, FeatureNeeds needs) {
  RAE_CHECK(o.samples.empty() != o.images_dir.empty(),
            "give exactly one input: --samples FILE.npz or --images DIR");
  if (!o.images_dir.empty()) return open_image_folder(o.images_dir, o.image_size);
  return open_npz_source(o.samples, "samples", needs);
}

// Sample and reference features must live in the same spaces.
void check_widths(const FeatureWidths& samples, const std::string& samples_path,
                  const FeatureWidths& ref, const std::string& ref_path, bool ref_has_spatial) {
  RAE_CHECK(samples.pool == ref.pool, "samples '", samples_path, "' give pool features (N, ",
            samples.pool, "), reference '", ref_path, "' expects (N, ", ref.pool, ")");
  RAE_CHECK(!ref_has_spatial || samples.spatial == ref.spatial, "samples '", samples_path,
            "' give spatial features (N, ", samples.spatial, "), reference '", ref_path,
            "' expects (N, ", ref.spatial, ")");
}

json frechet_json(const FrechetTerms& t) {
  return {{"distance", t.distance},     {"mean_term", t.mean_term},
          {"trace_samples", t.trace_1}, {"trace_reference", t.trace_2},
          {"trace_sqrt", t.trace_sqrt}, {"negative_eigenvalues", t.negative_eigenvalues}};
}

// Evenly spread indices: i * n / m for i < m (all of them when m >= n).
std::vector<int64_t> spread_indices(int64_t n, int64_t m) {
  m = std::min(m, n);
  std::vector<int64_t> idx(static_cast<size_t>(std::max<int64_t>(m, 0)));
  for (int64_t i = 0; i < m; ++i) idx[i] = static_cast<int64_t>((static_cast<__int128>(i) * n) / m);
  return idx;
}

}  // namespace

Device eval_device(const std::string& spec, distributed::Communicator* comm) {
  if (spec == "cuda") {
    RAE_CHECK(cuda_available(), "--device cuda: no GPU is available (this build: ",
              cuda_compiled() ? "CUDA" : "CPU only", ")");
    const int local = comm ? comm->topology().physical_local_rank : 0;
    return Device::cuda(local % cuda_device_count());
  }
  Device d = parse_device(spec);
  RAE_CHECK(d.is_cpu() || cuda_available(), "--device ", spec, ": no GPU is available");
  return d;
}

json run_eval(const EvalJobOptions& o, const ExtractorFactory& factory,
              distributed::Communicator* comm) {
  std::unique_ptr<FeatureSource> samples = open_samples(o, FeatureNeeds{true, true});
  return evaluate_samples(*samples, o, factory, comm);
}

json evaluate_samples(const FeatureSource& samples_src, const EvalJobOptions& o,
                      const ExtractorFactory& factory, distributed::Communicator* comm) {
  const auto t_start = std::chrono::steady_clock::now();
  const int rank = comm ? comm->rank() : 0;
  const Device device = eval_device(o.device, comm);
  const FeatureSource* samples = &samples_src;
  RAE_CHECK(!o.ref.empty(), "--ref REF.npz is required");
  Reference ref = open_reference(o.ref);
  LazyExtractor ex(factory);
  // Shapes must agree before any work is done (image sources: the extractor's widths).
  const FeatureWidths smp_widths = source_widths(*samples, ex);
  FeatureWidths ref_widths = source_widths(*ref.vectors, ex);
  if (ref.stats) ref_widths = {ref.stats->pool.dim, ref.stats->spatial.dim, 0};
  check_widths(smp_widths, samples->path(), ref_widths, ref.path, true);
  RAE_CHECK(!ref.stats || source_widths(*ref.vectors, ex).pool == ref.stats->pool.dim,
            "reference '", ref.path, "': its ",
            ref.vectors->has_images() ? "images give" : "pool has", " features (N, ",
            source_widths(*ref.vectors, ex).pool, "), its 'mu' is (", ref.stats->pool.dim, ",)");
  if (rank == 0)
    log::info("eval: samples '", samples->path(), "': ", samples->describe(), "; reference '",
              ref.path, "': ", ref.vectors->describe(),
              ref.stats ? " + precomputed statistics" : "", "; device ", device.str(), ", ",
              comm ? comm->size() : 1, " rank(s)");
  // Input identities (checksums of multi-GB files) on rank 0 while the features are computed.
  std::future<json> identities;
  if (rank == 0)
    identities = std::async(std::launch::async, [&] {
      return json{{"samples", json::parse(samples->identity_json())},
                  {"reference", json::parse(ref.vectors->identity_json())}};
    });

  ExtractRequest sreq;
  sreq.label = "samples";
  sreq.keep_pool = true;
  sreq.keep_logits = true;
  sreq.batch = o.batch;
  sreq.progress_seconds = o.progress_seconds;
  auto t0 = std::chrono::steady_clock::now();
  Extracted smp = extract_features(*samples, sreq, ex, comm);
  const double t_samples = seconds_since(t0);

  ExtractRequest rreq = sreq;
  rreq.label = "reference";
  rreq.stats = !ref.stats.has_value();
  rreq.keep_logits = false;
  t0 = std::chrono::steady_clock::now();
  Extracted rf = extract_features(*ref.vectors, rreq, ex, comm);
  const double t_ref = seconds_since(t0);

  // Rank 0's CPU work (two 2048 x 2048 eigenproblems, IS) overlaps precision/recall (GPU GEMMs on
  // every rank).
  struct Scores {
    FrechetTerms fid, sfid;
    InceptionScore is;
    double seconds = 0;
  };
  std::future<Scores> scores;
  if (rank == 0)
    scores = std::async(std::launch::async, [&] {
      const auto t = std::chrono::steady_clock::now();
      Scores sc;
      ReferenceStats rs =
          ref.stats ? *ref.stats
                    : ReferenceStats{rf.pool_moments.gaussian(), rf.spatial_moments.gaussian()};
      sc.fid = frechet_terms(smp.pool_moments.gaussian(), rs.pool);
      sc.sfid = frechet_terms(smp.spatial_moments.gaussian(), rs.spatial);
      sc.is = inception_score(smp.logits.data<float>(), smp.logits.dim(0), smp.logits.dim(1),
                              o.is_split_size);
      sc.seconds = seconds_since(t);
      return sc;
    });
  t0 = std::chrono::steady_clock::now();
  ManifoldOptions mo;
  mo.k = o.pr_k;
  mo.device = device;
  mo.comm = comm;
  PrecisionRecall pr = precision_recall(rf.pool, smp.pool, mo);
  const double t_pr = seconds_since(t0);

  json metrics;
  if (rank == 0) {
    const Scores sc = scores.get();
    const FrechetTerms& fid = sc.fid;
    const FrechetTerms& sfid = sc.sfid;
    const InceptionScore& is = sc.is;
    const double t_fid = sc.seconds;
    metrics = {
        {"fid", fid.distance},
        {"sfid", sfid.distance},
        {"inception_score", is.score},
        {"precision", pr.precision},
        {"recall", pr.recall},
        {"inception_score_splits", is.split_scores},
        {"counts",
         {{"samples", smp.count},
          {"reference_vectors", rf.count},
          {"reference_statistics", ref.stats ? json(nullptr) : json(rf.count)}}},
        {"fid_terms", frechet_json(fid)},
        {"sfid_terms", frechet_json(sfid)},
        {"settings",
         {{"device", o.device},
          {"precision", o.precision},
          {"ranks", comm ? comm->size() : 1},
          {"batch", o.batch},
          {"image_size", o.image_size},
          {"precision_recall_k", o.pr_k},
          {"is_split_size", o.is_split_size},
          {"reference_statistics_from_file", ref.stats.has_value()}}},
        {"seconds",
         {{"sample_features", t_samples},
          {"reference_features", t_ref},
          {"precision_recall", t_pr},
          {"frechet", t_fid}}},
    };
    metrics["inputs"] = identities.get();
    metrics["inputs"]["extractor"] = json::parse(ex.identity_json());
    metrics["seconds"]["total"] = seconds_since(t_start);
    if (!o.out.empty()) cache::write_file_atomic(o.out, metrics.dump(2) + "\n");
    log::info("eval: FID ", fid.distance, "  sFID ", sfid.distance, "  IS ", is.score,
              "  precision ", pr.precision, "  recall ", pr.recall, "  (", smp.count, " samples, ",
              seconds_since(t_start), " s)");
  }
  return metrics;
}

void run_stats(const EvalJobOptions& o, const ExtractorFactory& factory,
               distributed::Communicator* comm) {
  const int rank = comm ? comm->rank() : 0;
  RAE_CHECK(!o.out.empty(), "--out REF.npz is required");
  RAE_CHECK(o.ref_images >= 0, "--ref-images must be >= 0");
  std::unique_ptr<FeatureSource> src = open_samples(o, FeatureNeeds{true, false});
  LazyExtractor ex(factory);
  ExtractRequest req;
  req.label = "stats";
  req.batch = o.batch;
  req.progress_seconds = o.progress_seconds;
  // Without images, the manifold vectors of the reference are pool features: keep them.
  req.keep_pool = !src->has_images() && o.ref_images > 0;
  Extracted e = extract_features(*src, req, ex, comm);
  if (rank != 0) return;
  ReferenceStats rs{e.pool_moments.gaussian(), e.spatial_moments.gaussian()};
  const std::vector<int64_t> idx = spread_indices(src->size(), o.ref_images);
  npz::Writer w(o.out);
  if (!idx.empty() && src->has_images()) {
    // arr_0 streamed in pieces: a 10,000-image subset at 256 x 256 is ~2 GB.
    Tensor first = src->images_at({idx[0]});
    w.begin_array("arr_0", DType::U8,
                  {static_cast<int64_t>(idx.size()), first.dim(1), first.dim(2), 3});
    constexpr size_t kPiece = 256;
    for (size_t i = 0; i < idx.size(); i += kPiece) {
      std::vector<int64_t> piece(idx.begin() + i, idx.begin() + std::min(idx.size(), i + kPiece));
      Tensor imgs = src->images_at(piece);
      RAE_CHECK(imgs.dim(1) == first.dim(1) && imgs.dim(2) == first.dim(2), "'", src->path(),
                "': images differ in size (", imgs.dim(2), "x", imgs.dim(1), " vs ", first.dim(2),
                "x", first.dim(1), "); arr_0 needs one size (--image-size)");
      w.append(imgs);
    }
    w.end_array();
  } else if (!idx.empty()) {
    Tensor pool = Tensor::empty({static_cast<int64_t>(idx.size()), e.widths.pool});
    for (size_t i = 0; i < idx.size(); ++i)
      std::memcpy(pool.data<float>() + i * e.widths.pool,
                  e.pool.data<float>() + idx[i] * e.widths.pool,
                  static_cast<size_t>(e.widths.pool) * sizeof(float));
    w.add("pool", pool);
  }
  add_reference_stats(w, rs);
  w.commit();
  log::info("eval stats: wrote '", o.out, "': statistics of ", e.count, " ",
            src->has_images() ? "images" : "feature rows", ", ", idx.size(),
            src->has_images() ? " images (arr_0)" : " pool rows (pool)", " for precision/recall");
}

void run_features(const EvalJobOptions& o, const ExtractorFactory& factory,
                  distributed::Communicator* comm) {
  RAE_CHECK(!o.out.empty(), "--out FEATURES.npz is required");
  std::unique_ptr<FeatureSource> src = open_samples(o, FeatureNeeds{true, true});
  LazyExtractor ex(factory);
  ExtractRequest req;
  req.label = "features";
  req.stats = false;
  req.keep_pool = req.keep_spatial = req.keep_logits = true;
  req.batch = o.batch;
  req.progress_seconds = o.progress_seconds;
  Extracted e = extract_features(*src, req, ex, comm);
  if ((comm ? comm->rank() : 0) != 0) return;
  npz::save(o.out, {{"pool", e.pool}, {"spatial", e.spatial}, {"logits", e.logits}});
  log::info("eval features: wrote '", o.out, "': ", e.count, " rows");
}

}  // namespace rae::eval
