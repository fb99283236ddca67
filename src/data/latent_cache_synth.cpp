#include "data/latent_cache_synth.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/latent_cache_stats.h"
#include "data/latent_cache_writer.h"
#include "data/output_dir.h"

namespace rae::cache {

namespace {
int32_t synth_label(const SynthOptions& o, int64_t index) {
  float u =
      rng::uniform_at(rng::Key{o.seed, rng::Purpose::Test, 3, static_cast<uint64_t>(index)}, 0);
  return static_cast<int32_t>(
      std::min<int64_t>(o.classes - 1, static_cast<int64_t>(u * o.classes)));
}
}  // namespace

int32_t synth_sample(const SynthOptions& o, int64_t index, float* out, bool flipped) {
  const int32_t label = synth_label(o, index);
  const rng::Key mean_key{o.seed, rng::Purpose::Test, 1, static_cast<uint64_t>(label)};
  const rng::Key noise_key{o.seed, rng::Purpose::Test, 2, static_cast<uint64_t>(index)};
  const int64_t H = o.grid_h, W = o.grid_w, C = o.channels;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t w = 0; w < W; ++w) {
      // The flipped view of token (h, w) is the plain token (h, W-1-w).
      const int64_t src = (h * W + (flipped ? W - 1 - w : w)) * C;
      float* dst = out + (h * W + w) * C;
      for (int64_t c = 0; c < C; ++c)
        dst[c] =
            rng::normal_at(mean_key, src + c) + o.noise_std * rng::normal_at(noise_key, src + c);
    }
  return label;
}

Manifest write_synthetic_cache(const SynthOptions& o) {
  RAE_CHECK(!o.out.empty(), "synth-cache: --out is required");
  RAE_CHECK(o.samples > 0, "synth-cache: --samples must be > 0, got ", o.samples);
  RAE_CHECK(o.grid_h > 0 && o.grid_w > 0 && o.channels > 0,
            "synth-cache: grid and channels must be > 0");
  RAE_CHECK(LatentLayout({o.grid_h, o.grid_w, o.channels, o.dtype, o.flip}).in_bounds(),
            "synth-cache: samples of ", o.grid_h, "x", o.grid_w, "x", o.channels,
            " elements exceed the limit of ", kMaxSampleElements,
            " elements per sample (2^28, 1 GiB as f32)");
  RAE_CHECK(o.classes >= 1, "synth-cache: --classes must be >= 1");
  RAE_CHECK(o.shard_size > 0, "synth-cache: --shard-size must be > 0");
  LatentLayout layout{o.grid_h, o.grid_w, o.channels, o.dtype, o.flip};
  data::prepare_cache_dir(o.out, o.overwrite, "synth-cache");
  ShardSetWriter writer(o.out, "shard-", layout, 0, o.shard_size, o.samples);
  const int64_t e = layout.elements();
  const int64_t batch = std::max<int64_t>(1, std::min<int64_t>(1024, (64 << 20) / (e * 4)));
  std::vector<float> lat(batch * e), flip(o.flip ? batch * e : 0);
  std::vector<int32_t> labels(batch);
  for (int64_t g0 = 0; g0 < o.samples; g0 += batch) {
    int64_t n = std::min(batch, o.samples - g0);
    for (int64_t i = 0; i < n; ++i) {
      labels[i] = synth_sample(o, g0 + i, lat.data() + i * e, false);
      if (o.flip) synth_sample(o, g0 + i, flip.data() + i * e, true);
      if (o.alter) {
        o.alter(g0 + i, lat.data() + i * e, e);
        if (o.flip) o.alter(g0 + i, flip.data() + i * e, e);
      }
    }
    writer.append(lat.data(), o.flip ? flip.data() : nullptr, labels.data(), n);
  }
  Manifest m;
  m.layout = layout;
  m.encoder_id = "synthetic";
  m.split = "train";
  m.num_classes = o.classes;
  m.shards = writer.finish();
  m.finalize_shards();
  m.stats_file = kStatsFile;
  save_stats((std::filesystem::path(o.out) / kStatsFile).string(), writer.stats(), layout.tokens(),
             layout.channels);
  m.save(o.out);
  return m;
}

}  // namespace rae::cache
