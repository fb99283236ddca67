#include "datasets/procedural.h"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/output_dir.h"

namespace rae::datasets {

namespace {

struct Rgb {
  float r, g, b;
};

Rgb hsv(float h, float s, float v) {
  h = h - std::floor(h);
  float i = std::floor(h * 6), f = h * 6 - i;
  float p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  switch (static_cast<int>(i) % 6) {
    case 0:
      return {v, t, p};
    case 1:
      return {q, v, p};
    case 2:
      return {p, v, t};
    case 3:
      return {p, q, v};
    case 4:
      return {t, p, v};
    default:
      return {v, p, q};
  }
}

// Signed "inside" test of shape kind at local coordinates (u, v) in [-1, 1]^2.
bool inside_shape(int kind, float u, float v) {
  switch (kind) {
    case 0:
      return u * u + v * v < 1.0f;  // disk
    case 1:
      return std::fabs(u) < 0.8f && std::fabs(v) < 0.8f;  // square
    case 2:
      return v < 0.8f && v > -0.9f + 1.7f * std::fabs(u) * 1.1f;  // triangle
    case 3: {
      float r = u * u + v * v;
      return r < 1.0f && r > 0.35f;
    }  // ring
    case 4:
      return std::fabs(u) + std::fabs(v) < 1.0f;  // diamond
    default:
      return (std::fabs(u) < 0.25f || std::fabs(v) < 0.25f) && std::fabs(u) < 0.9f &&
             std::fabs(v) < 0.9f;  // cross
  }
}

}  // namespace

std::string class_folder_name(int cls) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "n%08d", cls);
  return buf;
}

data::Image render_procedural(int cls, int64_t index, int w, int h, uint64_t seed) {
  // Per-class constants: shape kind, palette hue, stripe orientation and frequency.
  const int kind = cls % 6;
  const float hue = std::fmod(0.61803398875f * static_cast<float>(cls), 1.0f);
  const float stripe_angle =
      0.4f * static_cast<float>(cls / 6) + 0.3f * static_cast<float>(cls % 3);
  const float stripe_freq = 0.08f + 0.05f * static_cast<float>((cls / 2) % 4);
  // Per-image draws.
  rng::Key key{seed, rng::Purpose::Test, static_cast<uint64_t>(cls) + 1000,
               static_cast<uint64_t>(index)};
  auto u = [&](int i) { return rng::uniform_at(key, i); };
  const float cx = (0.3f + 0.4f * u(0)) * w, cy = (0.3f + 0.4f * u(1)) * h;
  const float radius = (0.2f + 0.15f * u(2)) * std::min(w, h);
  const float rot = 0.5f * (u(3) - 0.5f);
  const float hue_jitter = 0.04f * (u(4) - 0.5f);
  const float phase = 6.2831853f * u(5);
  const Rgb fg = hsv(hue + hue_jitter, 0.85f, 0.9f);
  const Rgb bg1 = hsv(hue + 0.5f + hue_jitter, 0.35f, 0.55f), bg2 = hsv(hue + 0.45f, 0.25f, 0.35f);
  const float ca = std::cos(stripe_angle), sa = std::sin(stripe_angle);
  const float cr = std::cos(rot), sr = std::sin(rot);
  data::Image img = data::Image::make(w, h, 3);
  rng::Key noise_key{seed, rng::Purpose::Test, static_cast<uint64_t>(cls) + 5000,
                     static_cast<uint64_t>(index)};
  for (int y = 0; y < h; ++y) {
    uint8_t* row = img.row(y);
    for (int x = 0; x < w; ++x) {
      float s = 0.5f + 0.5f * std::sin(stripe_freq * (ca * x + sa * y) + phase);
      Rgb c{bg1.r * s + bg2.r * (1 - s), bg1.g * s + bg2.g * (1 - s), bg1.b * s + bg2.b * (1 - s)};
      float dx = (x + 0.5f - cx) / radius, dy = (y + 0.5f - cy) / radius;
      float lu = cr * dx + sr * dy, lv = -sr * dx + cr * dy;
      if (inside_shape(kind, lu, lv)) {
        float shade = 0.85f + 0.15f * (1 - 0.5f * (lu + lv));
        c = {fg.r * shade, fg.g * shade, fg.b * shade};
      }
      float n = 0.03f * rng::normal_at(noise_key, static_cast<uint64_t>(y) * w + x);
      row[3 * x] = static_cast<uint8_t>(std::clamp((c.r + n) * 255.0f + 0.5f, 0.0f, 255.0f));
      row[3 * x + 1] = static_cast<uint8_t>(std::clamp((c.g + n) * 255.0f + 0.5f, 0.0f, 255.0f));
      row[3 * x + 2] = static_cast<uint8_t>(std::clamp((c.b + n) * 255.0f + 0.5f, 0.0f, 255.0f));
    }
  }
  return img;
}

ProceduralReport write_procedural_dataset(const std::string& out, const ProceduralSpec& spec) {
  namespace fs = std::filesystem;
  RAE_CHECK(spec.classes > 0 && spec.per_class > 0 && spec.size >= 8,
            "make-dataset: need classes > 0, per-class > 0 and size >= 8");
  RAE_CHECK(spec.size_max == 0 || spec.size_max >= spec.size, "make-dataset: --size-max ",
            spec.size_max, " is below --size ", spec.size);
  RAE_CHECK(spec.threads >= 0, "make-dataset: --threads must be >= 0, got ", spec.threads);
  RAE_CHECK(spec.jpeg_quality >= 1 && spec.jpeg_quality <= 100,
            "make-dataset: --quality must be in [1, 100], got ", spec.jpeg_quality);
  RAE_CHECK(!spec.split.empty() && spec.split.find('/') == std::string::npos && spec.split != "." &&
                spec.split != "..",
            "make-dataset: --split must be a plain folder name, got '", spec.split, "'");
  const fs::path root = fs::path(out) / spec.split;
  const std::vector<std::string> there = data::dir_entries(root.string());
  if (!there.empty()) {
    RAE_CHECK(spec.overwrite, "make-dataset: '", root.string(), "' is not empty (",
              data::name_sample(there),
              "); pass --overwrite to replace a dataset make-dataset wrote there, or choose "
              "another --out or --split");
    RAE_CHECK(fs::exists(root / kProceduralMarker), "make-dataset: --overwrite: '", root.string(),
              "' was not written by make-dataset (it has no ", kProceduralMarker,
              " file); it is left alone: remove it yourself if it may go");
    fs::remove_all(root);
    log::info("make-dataset: --overwrite: removed the previous '", root.string(), "'");
  }
  fs::create_directories(root);
  write_file_atomic(
      (root / kProceduralMarker).string(),
      detail::concat("{\"classes\": ", spec.classes, ", \"per_class\": ", spec.per_class,
                     ", \"size\": ", spec.size, ", \"size_max\": ", spec.size_max,
                     ", \"seed\": ", spec.seed, ", \"quality\": ", spec.jpeg_quality, "}\n"));
  for (int c = 0; c < spec.classes; ++c)
    fs::create_directories(fs::path(out) / spec.split / class_folder_name(c));
  // Every image depends only on (seed, class, index): rendered and encoded in parallel, the
  // files are the same as one thread writes.
  const int64_t total = static_cast<int64_t>(spec.classes) * spec.per_class;
  std::vector<int> kind(static_cast<size_t>(total));  // 0 rgb, 1 gray, 2 cmyk, 3 png, 4 png .JPEG
  auto one = [&](int64_t g) {
    const int c = static_cast<int>(g / spec.per_class), i = static_cast<int>(g % spec.per_class);
    rng::Key key{spec.seed, rng::Purpose::Test, 9000, static_cast<uint64_t>(g)};
    // Aspect ratio up to 1.5 either way, so center cropping matters.
    float a = 1.0f + 0.5f * rng::uniform_at(key, 0);
    bool wide = rng::uniform_at(key, 1) < 0.5f;
    int side = spec.size;
    if (spec.size_max > spec.size)
      side += static_cast<int>(rng::uniform_at(key, 2) *
                               static_cast<float>(spec.size_max - spec.size + 1));
    side = std::min(side, std::max(spec.size, spec.size_max));
    int w = wide ? static_cast<int>(side * a) : side;
    int h = wide ? side : static_cast<int>(side * a);
    data::Image img = render_procedural(c, i, w, h, spec.seed);
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%05d", class_folder_name(c).c_str(), i);
    std::string stem = (fs::path(out) / spec.split / class_folder_name(c) / name).string();
    int& k = kind[static_cast<size_t>(g)];
    if (spec.jpeg_only) {
      data::write_file_bytes(stem + ".JPEG",
                             data::encode_jpeg(img, spec.jpeg_quality, data::JpegColor::Rgb));
      k = 0;
    } else if (g == 1) {  // a PNG named .JPEG, as ImageNet has
      data::write_file_bytes(stem + ".JPEG", data::encode_png(img));
      k = 4;
    } else if (g % 11 == 3) {
      data::write_file_bytes(stem + ".png", data::encode_png(img));
      k = 3;
    } else if (g % 13 == 5) {
      data::write_file_bytes(stem + ".JPEG",
                             data::encode_jpeg(img, spec.jpeg_quality, data::JpegColor::Gray));
      k = 1;
    } else if (g % 17 == 7) {
      data::write_file_bytes(stem + ".JPEG",
                             data::encode_jpeg(img, spec.jpeg_quality, data::JpegColor::Cmyk));
      k = 2;
    } else {
      data::write_file_bytes(stem + ".JPEG",
                             data::encode_jpeg(img, spec.jpeg_quality, data::JpegColor::Rgb));
      k = 0;
    }
  };
  const int threads = spec.threads > 0 ? spec.threads : tbb::this_task_arena::max_concurrency();
  if (threads <= 1) {
    for (int64_t g = 0; g < total; ++g) one(g);
  } else {
    tbb::task_arena arena(threads);
    arena.execute([&] { tbb::parallel_for(int64_t(0), total, [&](int64_t g) { one(g); }); });
  }
  ProceduralReport rep;
  for (int k : kind) {
    int64_t* counts[] = {&rep.rgb_jpeg, &rep.gray_jpeg, &rep.cmyk_jpeg, &rep.png,
                         &rep.png_named_jpeg};
    ++*counts[k];
  }
  return rep;
}

}  // namespace rae::datasets
