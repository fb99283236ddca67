#include "eval/feature_source.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/image_preprocess.h"
#include "core/checksum.h"

namespace rae::eval {

namespace fs = std::filesystem;

namespace {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (int i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + (s[i] < 0 ? std::string("*") : std::to_string(s[i]));
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string file_identity(const std::string& path) {
  uint64_t bytes = 0;
  std::string sum = file_checksum(path, &bytes);
  return nlohmann::json{{"path", fs::absolute(path).string()}, {"bytes", bytes}, {"xxh64", sum}}
      .dump();
}

class NpzImages : public FeatureSource {
 public:
  explicit NpzImages(std::shared_ptr<npz::Reader> r) : r_(std::move(r)) {
    shape_ = r_->info("arr_0").shape;
    compressed_ = r_->info("arr_0").compressed;
  }
  const std::string& path() const override { return r_->path(); }
  int64_t size() const override { return shape_[0]; }
  bool has_images() const override { return true; }
  std::string describe() const override {
    return std::to_string(shape_[0]) + " images " + std::to_string(shape_[2]) + "x" +
           std::to_string(shape_[1]) + " (arr_0)";
  }
  Tensor images(int64_t begin, int64_t count) const override {
    if (!compressed_) return r_->read_rows("arr_0", begin, count);
    // A deflated entry is inflated once and kept (reading rows would inflate it every time).
    if (!inflated_.defined()) inflated_ = r_->read("arr_0");
    return inflated_.narrow(0, begin, count);
  }
  std::string identity_json() const override { return file_identity(path()); }

 private:
  std::shared_ptr<npz::Reader> r_;
  Shape shape_;
  bool compressed_ = false;
  mutable Tensor inflated_;
};

class NpzFeatures : public FeatureSource {
 public:
  explicit NpzFeatures(std::shared_ptr<npz::Reader> r) : r_(std::move(r)) {
    n_ = r_->info("pool").shape[0];
    has_spatial_ = r_->contains("spatial");
    has_logits_ = r_->contains("logits");
  }
  const std::string& path() const override { return r_->path(); }
  int64_t size() const override { return n_; }
  bool has_images() const override { return false; }
  std::string describe() const override {
    return std::to_string(n_) + " feature rows (pool " + std::to_string(r_->info("pool").shape[1]) +
           (has_spatial_ ? ", spatial " + std::to_string(r_->info("spatial").shape[1]) : "") +
           (has_logits_ ? ", logits " + std::to_string(r_->info("logits").shape[1]) : "") + ")";
  }
  BatchFeatures features(int64_t begin, int64_t count) const override {
    BatchFeatures f;
    f.pool = read_rows_f32(*r_, "pool", begin, count);
    if (has_spatial_) f.spatial = read_rows_f32(*r_, "spatial", begin, count);
    if (has_logits_) f.logits = read_rows_f32(*r_, "logits", begin, count);
    return f;
  }
  std::string identity_json() const override { return file_identity(path()); }
  FeatureWidths widths() const override {
    return {r_->info("pool").shape[1], has_spatial_ ? r_->info("spatial").shape[1] : 0,
            has_logits_ ? r_->info("logits").shape[1] : 0};
  }

 private:
  std::shared_ptr<npz::Reader> r_;
  int64_t n_ = 0;
  bool has_spatial_ = false, has_logits_ = false;
};

class ImageFolderSource : public FeatureSource {
 public:
  ImageFolderSource(std::string dir, int image_size) : dir_(std::move(dir)), size_(image_size) {
    RAE_CHECK(fs::is_directory(dir_), "image folder '", dir_, "' does not exist");
    for (const auto& e : fs::recursive_directory_iterator(dir_))
      if (e.is_regular_file() && data::has_image_extension(e.path().filename().string()))
        rel_.push_back(fs::relative(e.path(), dir_).string());
    std::sort(rel_.begin(), rel_.end());
    RAE_CHECK(!rel_.empty(), "image folder '", dir_, "' holds no .jpg/.jpeg/.png files");
  }
  const std::string& path() const override { return dir_; }
  int64_t size() const override { return static_cast<int64_t>(rel_.size()); }
  bool has_images() const override { return true; }
  std::string describe() const override {
    return std::to_string(rel_.size()) + " image files" +
           (size_ > 0 ? ", center-cropped to " + std::to_string(size_) : "");
  }
  Tensor images(int64_t begin, int64_t count) const override {
    RAE_CHECK(begin >= 0 && count >= 0 && begin + count <= size(), "image folder '", dir_,
              "': images [", begin, ", ", begin + count, ") out of range");
    std::vector<int64_t> idx(count);
    for (int64_t i = 0; i < count; ++i) idx[i] = begin + i;
    return images_at(idx);
  }
  // Decodes in parallel (oneTBB), then packs into one tensor.
  Tensor images_at(const std::vector<int64_t>& idx) const override {
    const int64_t count = static_cast<int64_t>(idx.size());
    std::vector<data::Image> imgs(count);
    tbb::parallel_for(int64_t{0}, count, [&](int64_t i) {
      data::Image img = data::decode_image_file((fs::path(dir_) / rel_.at(idx[i])).string());
      imgs[i] = size_ > 0 ? data::center_crop_arr(img, size_) : std::move(img);
    });
    if (count == 0) return Tensor::empty({0, std::max(size_, 1), std::max(size_, 1), 3}, DType::U8);
    const int w = imgs[0].width, h = imgs[0].height;
    Tensor out = Tensor::empty({count, h, w, 3}, DType::U8);
    for (int64_t i = 0; i < count; ++i) {
      RAE_CHECK(imgs[i].width == w && imgs[i].height == h, "image folder '", dir_, "': '",
                rel_[idx[i]], "' is ", imgs[i].width, "x", imgs[i].height, ", '", rel_[idx[0]],
                "' is ", w, "x", h, "; pass --image-size to crop every image to one size");
      std::copy(imgs[i].pixels.begin(), imgs[i].pixels.end(),
                out.data<uint8_t>() + i * static_cast<int64_t>(h) * w * 3);
    }
    return out;
  }
  std::string identity_json() const override {
    // The listing (names and sizes), not the contents: hashing a whole folder would cost a read
    // of every file a second time.
    Xxh64 h;
    uint64_t total = 0;
    for (const auto& r : rel_) {
      const uint64_t bytes = fs::file_size(fs::path(dir_) / r);
      total += bytes;
      const std::string line = r + '\t' + std::to_string(bytes) + '\n';
      h.update(line.data(), line.size());
    }
    return nlohmann::json{{"path", fs::absolute(dir_).string()},
                          {"files", rel_.size()},
                          {"bytes", total},
                          {"listing_xxh64", checksum_hex(h.digest())}}
        .dump();
  }

 private:
  std::string dir_;
  int size_;
  std::vector<std::string> rel_;
};

class TensorImages : public FeatureSource {
 public:
  TensorImages(Tensor images, std::string name)
      : images_(std::move(images)), name_(std::move(name)) {}
  const std::string& path() const override { return name_; }
  int64_t size() const override { return images_.dim(0); }
  bool has_images() const override { return true; }
  std::string describe() const override {
    return std::to_string(size()) + " images " + std::to_string(images_.dim(2)) + "x" +
           std::to_string(images_.dim(1)) + " (in memory)";
  }
  Tensor images(int64_t begin, int64_t count) const override {
    return images_.narrow(0, begin, count);
  }
  std::string identity_json() const override {
    return nlohmann::json{
        {"name", name_},
        {"images", size()},
        {"xxh64", checksum_hex(xxh64(images_.raw(), images_.nbytes()))}}
        .dump();
  }

 private:
  Tensor images_;
  std::string name_;
};

const std::vector<DType> kFloatTypes = {DType::F32, DType::F64, DType::F16};

}  // namespace

Tensor FeatureSource::images(int64_t, int64_t) const {
  RAE_THROW("'", path(), "' holds features, not images");
}
Tensor FeatureSource::images_at(const std::vector<int64_t>& idx) const {
  RAE_CHECK(!idx.empty(), "images_at: no indices");
  Tensor first = images(idx[0], 1);
  Shape shape = first.shape();
  shape[0] = static_cast<int64_t>(idx.size());
  Tensor out = Tensor::empty(shape, DType::U8);
  const size_t bytes = first.nbytes();
  for (size_t i = 0; i < idx.size(); ++i) {
    Tensor one = i == 0 ? first : images(idx[i], 1);
    if (!one.is_contiguous()) one = one.clone();
    std::memcpy(out.data<uint8_t>() + i * bytes, one.raw(), bytes);
  }
  return out;
}

BatchFeatures FeatureSource::features(int64_t, int64_t) const {
  RAE_THROW("'", path(), "' holds images, not features");
}

void check_npz_array(const npz::Reader& r, const std::string& key, const std::vector<DType>& dtypes,
                     const Shape& shape, const std::string& expect, const std::string& role) {
  RAE_CHECK(r.contains(key), role, " file '", r.path(), "' has no key '", key, "' (expected ",
            expect, ")");
  const npz::ArrayInfo& a = r.info(key);
  bool ok = std::find(dtypes.begin(), dtypes.end(), a.dtype) != dtypes.end() &&
            a.shape.size() == shape.size();
  for (int i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == a.shape[i];
  RAE_CHECK(ok, role, " file '", r.path(), "', key '", key, "': found ", npz::numpy_descr(a.dtype),
            " ", shape_str(a.shape), ", expected ", expect);
}

Tensor read_rows_f32(const npz::Reader& r, const std::string& key, int64_t begin, int64_t count) {
  Tensor t = r.read_rows(key, begin, count);
  if (t.dtype() == DType::F32) return t.is_contiguous() ? t : t.clone();
  return t.cast(DType::F32);
}

std::unique_ptr<FeatureSource> open_npz_source(const std::string& path, const std::string& role,
                                               FeatureNeeds needs) {
  RAE_CHECK(fs::exists(path), role, " file '", path, "' does not exist");
  auto r = std::make_shared<npz::Reader>(path);
  if (r->contains("arr_0")) {
    check_npz_array(*r, "arr_0", {DType::U8}, {-1, -1, -1, 3}, "uint8 images (N, H, W, 3)", role);
    const Shape& s = r->info("arr_0").shape;
    RAE_CHECK(s[0] > 0 && s[1] > 0 && s[2] > 0, role, " file '", path,
              "', key 'arr_0': ", shape_str(s), " holds no images");
    return std::make_unique<NpzImages>(r);
  }
  RAE_CHECK(r->contains("pool"), role, " file '", path,
            "' has neither 'arr_0' (uint8 images (N, H, W, 3)) nor 'pool' (float features "
            "(N, D))");
  check_npz_array(*r, "pool", kFloatTypes, {-1, -1}, "float features (N, D)", role);
  const int64_t n = r->info("pool").shape[0];
  RAE_CHECK(n > 0, role, " file '", path, "', key 'pool': no rows");
  for (const char* key : {"spatial", "logits"}) {
    if (!r->contains(key)) {
      const bool needed = std::string(key) == "spatial" ? needs.spatial : needs.logits;
      RAE_CHECK(!needed, role, " file '", path, "' has 'pool' but no '", key,
                "' (expected float features (", n, ", D))");
      continue;
    }
    check_npz_array(*r, key, kFloatTypes, {n, -1},
                    "float features (" + std::to_string(n) + ", D), one row per 'pool' row", role);
  }
  return std::make_unique<NpzFeatures>(r);
}

std::unique_ptr<FeatureSource> tensor_source(const Tensor& images, const std::string& name) {
  RAE_CHECK(!images.is_cuda() && images.is_contiguous() && images.dtype() == DType::U8 &&
                images.ndim() == 4 && images.dim(3) == 3 && images.dim(0) > 0,
            name, ": expected contiguous CPU uint8 images (N, H, W, 3), got ", images.str());
  return std::make_unique<TensorImages>(images, name);
}

std::unique_ptr<FeatureSource> open_image_folder(const std::string& dir, int image_size) {
  RAE_CHECK(image_size >= 0, "--image-size must be >= 0, got ", image_size);
  return std::make_unique<ImageFolderSource>(dir, image_size);
}

}  // namespace rae::eval
