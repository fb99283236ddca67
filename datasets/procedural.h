// Procedural class-conditional image dataset: every class has its own shape, colour palette and
// background texture, every image its own placement, size, rotation and noise, all drawn from
// the counter RNG keyed by (seed, class, index), so the same call writes the same bytes.
// Written as an ImageFolder tree (train/<wnid>/<wnid>_<i>.JPEG) of real JPEG files, with a few
// grayscale and CMYK JPEGs, some PNG files and one PNG named .JPEG to exercise every decoder path.
#pragma once
#include <cstdint>
#include <string>

#include "data/image_decode.h"

namespace rae::datasets {

struct ProceduralSpec {
  int classes = 10;
  int per_class = 30;
  int size = 64;  // shorter side in pixels (the longer side is up to 1.5x)
  // > size: each image's shorter side is drawn from [size, size_max] (ImageNet-like variety:
  // 400-500 for the cache job's device benchmark); 0 or size: every image has `size`.
  int size_max = 0;
  int threads = 1;         // images rendered and encoded in parallel (0: all cores); same bytes
  bool jpeg_only = false;  // every image an RGB JPEG (no gray, CMYK or PNG files)
  uint64_t seed = 0;
  std::string split = "train";
  int jpeg_quality = 90;
  bool overwrite =
      false;  // replace a split this generator wrote (else a non-empty split is an error)
};

// Written first into out/<split>: marks a split as this generator's, the only kind that
// `overwrite` removes.
constexpr const char* kProceduralMarker = ".rae-make-dataset";

struct ProceduralReport {
  int64_t rgb_jpeg = 0, gray_jpeg = 0, cmyk_jpeg = 0, png = 0, png_named_jpeg = 0;
  int64_t total() const { return rgb_jpeg + gray_jpeg + cmyk_jpeg + png + png_named_jpeg; }
};

std::string class_folder_name(int cls);  // "n00000007": sorts in class order, like ImageNet wnids
// One image of class `cls`, sample `index`, w x h RGB.
data::Image render_procedural(int cls, int64_t index, int w, int h, uint64_t seed);
// Writes out/<split>/<wnid>/... and returns what was written. A non-empty out/<split> is an error,
// unless `overwrite` and it holds kProceduralMarker: then it is removed first.
ProceduralReport write_procedural_dataset(const std::string& out, const ProceduralSpec& spec);

}  // namespace rae::datasets
