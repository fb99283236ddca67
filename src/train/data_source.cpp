#include "train/data_source.h"

#include <filesystem>

#include "core/checksum.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/latent_cache_reader.h"
#include "data/latent_cache_stats.h"

namespace fs = std::filesystem;

namespace rae::train {

SyntheticStream::SyntheticStream(int64_t samples, int64_t grid, int64_t channels, int64_t classes,
                                 uint64_t data_seed, double noise_scale, bool materialize)
    : n_(samples),
      grid_(grid),
      c_(channels),
      k_(classes),
      data_seed_(data_seed),
      noise_(noise_scale),
      materialize_(materialize) {
  RAE_CHECK(samples >= 1 && grid >= 1 && channels >= 1 && classes >= 1,
            "synthetic stream: bad shape ", samples, "x", grid, "x", channels, "x", classes);
}

std::string SyntheticStream::order_signature() const {
  return detail::concat("synthetic-v1 samples=", n_, " grid=", grid_, " channels=", c_,
                        " classes=", k_, " data_seed=", data_seed_, " noise=", noise_,
                        " seed=", opt_.seed, " global_batch=", opt_.global_batch);
}

std::string SyntheticStream::describe() const {
  return detail::concat("synthetic data (", n_, " samples of ", grid_, "x", grid_, "x", c_, ", ",
                        k_, " classes)");
}

// Exact statistics over all samples (Welford in double), as the cache computes them.
diffusion::LatentStats SyntheticStream::latent_stats() const {
  const int64_t D = grid_ * grid_ * c_;
  std::vector<double> mean(D, 0.0), m2(D, 0.0);
  std::vector<float> row(D);
  int32_t label = 0;
  for (int64_t i = 0; i < n_; ++i) {
    read({i}, row.data(), &label);
    for (int64_t j = 0; j < D; ++j) {
      const double d = row[j] - mean[j];
      mean[j] += d / static_cast<double>(i + 1);
      m2[j] += d * (row[j] - mean[j]);
    }
  }
  diffusion::LatentStats s;
  s.mean = Tensor::empty({grid_ * grid_, c_});
  s.var = Tensor::empty({grid_ * grid_, c_});
  for (int64_t j = 0; j < D; ++j) {
    s.mean.data<float>()[j] = static_cast<float>(mean[j]);
    s.var.data<float>()[j] = static_cast<float>(m2[j] / static_cast<double>(n_));
  }
  return s;
}

void SyntheticStream::open(const StreamOptions& o) {
  RAE_CHECK(o.global_batch >= 1 && o.global_batch % o.world_size == 0,
            "synthetic stream: global batch ", o.global_batch, " for ", o.world_size, " ranks");
  RAE_CHECK(n_ >= o.global_batch, "dataset of ", n_, " samples is smaller than the global batch ",
            o.global_batch);
  opt_ = o;
  step_ = 0;
  cached_epoch_ = -1;
  if (materialize_ && !all_.defined()) {
    all_ = Tensor::empty({n_, grid_ * grid_, c_});
    std::vector<int64_t> ids(n_);
    for (int64_t i = 0; i < n_; ++i) ids[i] = i;
    std::vector<int32_t> labels(n_);
    read(ids, all_.data<float>(), labels.data());
  }
}

void SyntheticStream::read(const std::vector<int64_t>& ids, float* out, int32_t* labels) const {
  const int64_t D = grid_ * grid_ * c_;
  for (size_t b = 0; b < ids.size(); ++b) {
    RAE_CHECK(ids[b] >= 0 && ids[b] < n_, "synthetic stream: sample ", ids[b], " out of range");
    const int64_t k = ids[b] % k_;
    labels[b] = static_cast<int32_t>(k);
    rng::Key km{data_seed_, rng::Purpose::Test, 1, static_cast<uint64_t>(k)};
    rng::Key kn{data_seed_, rng::Purpose::Test, 2, static_cast<uint64_t>(ids[b])};
    for (int64_t i = 0; i < D; ++i)
      out[b * D + i] = rng::normal_at(km, i) + static_cast<float>(noise_) * rng::normal_at(kn, i);
  }
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  rng::Key k{seed, rng::Purpose::Shuffle, static_cast<uint64_t>(epoch), 0};
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    int64_t j = static_cast<int64_t>(rng::uniform_at(k, static_cast<uint64_t>(i)) * (i + 1));
    std::swap(p[i], p[std::min(j, i)]);
  }
  return p;
}

const std::vector<int64_t>& SyntheticStream::perm(int64_t epoch) {
  if (epoch != cached_epoch_) {
    perm_ = epoch_permutation(n_, opt_.seed, epoch);
    cached_epoch_ = epoch;
  }
  return perm_;
}

DataBatch SyntheticStream::next() {
  const int64_t GB = opt_.global_batch, b = GB / opt_.world_size;
  const int64_t spe = steps_per_epoch(), epoch = step_ / spe, s = step_ % spe;
  const auto& p = perm(epoch);
  std::vector<int64_t> ids(p.begin() + s * GB + opt_.rank * b,
                           p.begin() + s * GB + (opt_.rank + 1) * b);
  DataBatch out;
  out.latents = Tensor::empty({b, grid_ * grid_, c_});
  out.labels = Tensor::empty({b}, DType::I32);
  out.ids = Tensor::empty({b}, DType::I64);
  if (all_.defined()) {
    const int64_t D = grid_ * grid_ * c_;
    for (int64_t j = 0; j < b; ++j) {
      std::copy_n(all_.data<float>() + ids[j] * D, D, out.latents.data<float>() + j * D);
      out.labels.data<int32_t>()[j] = static_cast<int32_t>(ids[j] % k_);
    }
  } else {
    read(ids, out.latents.data<float>(), out.labels.data<int32_t>());
  }
  std::copy(ids.begin(), ids.end(), out.ids.data<int64_t>());
  ++step_;
  return out;
}

namespace {

class CacheStream : public BatchStream {
 public:
  explicit CacheStream(const std::string& dir) : dir_(dir) {
    manifest_ = cache::Manifest::load(dir);
    const auto& l = manifest_.layout;
    RAE_CHECK(l.grid_h == l.grid_w, "latent cache '", dir, "': grid ", l.grid_h, "x", l.grid_w,
              " is not square");
  }
  int64_t size() const override { return manifest_.total_samples; }
  int64_t grid() const override { return manifest_.layout.grid_h; }
  int64_t channels() const override { return manifest_.layout.channels; }
  int64_t num_classes() const override { return manifest_.num_classes; }
  void open(const StreamOptions& o) override {
    cache::ReaderOptions ro;
    ro.global_batch = o.global_batch;
    ro.rank = o.rank;
    ro.world_size = o.world_size;
    ro.seed = o.seed;
    reader_ = std::make_unique<cache::LatentCacheReader>(dir_, ro);
  }
  int64_t steps_per_epoch() const override { return reader_->steps_per_epoch(); }
  DataBatch next() override {
    cache::Batch b = reader_->next();
    return DataBatch{b.latents, b.labels, b.indices, b.wait_seconds};
  }
  nlohmann::json position() const override {
    auto p = reader_->position();
    return {{"epoch", p.epoch}, {"step", p.step}};
  }
  void seek(const nlohmann::json& pos) override {
    reader_->seek(
        cache::DataPosition{pos.at("epoch").get<int64_t>(), pos.at("step").get<int64_t>()});
  }
  std::string order_signature() const override {
    return reader_->order_signature() +
           " manifest_xxh64=" + file_checksum((fs::path(dir_) / "manifest.json").string());
  }
  diffusion::LatentStats latent_stats() const override {
    diffusion::LatentStats s;
    if (manifest_.stats_file.empty()) return s;
    cache::CacheStats c = cache::load_stats((fs::path(dir_) / manifest_.stats_file).string());
    s.mean = c.mean;
    s.var = c.var;
    return s;
  }
  std::string describe() const override { return "latent cache '" + dir_ + "'"; }

 private:
  std::string dir_;
  cache::Manifest manifest_;
  std::unique_ptr<cache::LatentCacheReader> reader_;
};

}  // namespace

std::unique_ptr<BatchStream> open_latent_cache(const std::string& dir) {
  return std::make_unique<CacheStream>(dir);
}

}  // namespace rae::train
