// Where the evaluation's images or features come from, with the input checks:
// - an .npz of images, `arr_0` (N, H, W, 3) uint8 (the ADM sample and reference batches);
// - an .npz of precomputed features, `pool` (N, Dp), `spatial` (N, Ds), `logits` (N, C), float
//   (what `rae eval features` writes; the tests' way in without the network);
// - a folder of JPEG/PNG files (recursively, sorted by relative path), decoded to RGB and
//   brought to S x S by the ADM center crop (data::center_crop_arr) unless S = 0.
// Rows are addressed by global index, so every rank reads just its own range. Every error names
// the file, the key and the expected shape.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/extractor.h"
#include "io/npz.h"

namespace rae::eval {

class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual const std::string& path() const = 0;
  virtual int64_t size() const = 0;     // images or feature rows
  virtual bool has_images() const = 0;  // true: features come from the extractor
  // Widths of the stored features (feature sources only; image sources: the extractor's).
  virtual FeatureWidths widths() const { return {}; }
  virtual std::string describe() const = 0;  // for logs: "50000 images 256x256"
  // Images [begin, begin + count): (count, H, W, 3) U8 CPU. Image sources only.
  virtual Tensor images(int64_t begin, int64_t count) const;
  // Images at arbitrary (increasing) indices, (idx.size(), H, W, 3) U8.
  virtual Tensor images_at(const std::vector<int64_t>& idx) const;
  // Features [begin, begin + count), CPU F32. Feature sources only (`spatial`/`logits` are
  // undefined when the file lacks them, which open_npz_source allows only when not needed).
  virtual BatchFeatures features(int64_t begin, int64_t count) const;
  // Identity of the input for metrics.json (JSON object text: path, bytes, xxh64 or listing hash).
  virtual std::string identity_json() const = 0;
};

// Which features a features file must carry besides `pool`.
struct FeatureNeeds {
  bool spatial = true;
  bool logits = true;
};
// Opens an .npz holding `arr_0` images or `pool` (+ `spatial`, `logits`) features; `role` names it
// in errors ("samples", "reference").
std::unique_ptr<FeatureSource> open_npz_source(const std::string& path, const std::string& role,
                                               FeatureNeeds needs = {});
// Opens a folder of images; `image_size` > 0 center-crops every image to that size, 0 keeps the
// decoded size (then every image of a batch must share it).
std::unique_ptr<FeatureSource> open_image_folder(const std::string& dir, int image_size);

// In-memory images (N, H, W, 3) U8 CPU (e.g. decoded reconstructions); `name` stands for the path
// in messages and metrics.json. Every rank must pass the same images (rows are global indices).
std::unique_ptr<FeatureSource> tensor_source(const Tensor& images, const std::string& name);

// Checks the header of `key` in `r`: its dtype is one of `dtypes` and its shape matches `shape`
// (-1: any size). The error names the file, the key, what was found and `expect` (e.g.
// "uint8 images (N, H, W, 3)").
void check_npz_array(const npz::Reader& r, const std::string& key, const std::vector<DType>& dtypes,
                     const Shape& shape, const std::string& expect, const std::string& role);

// Rows of a float array read as F32 (F16/F64 converted; F32 zero-copy where possible).
Tensor read_rows_f32(const npz::Reader& r, const std::string& key, int64_t begin, int64_t count);

}  // namespace rae::eval
