#include "train/image_stream.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>

#include "core/checksum.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/image_decode.h"
#include "data/image_preprocess.h"

namespace rae::train {

ImageStream::ImageStream(const std::string& root, int64_t crop, int64_t resize)
    : crop_(crop), resize_(resize) {
  RAE_CHECK(crop >= 1 && resize >= crop, "image stream: crop ", crop, " and resize ", resize,
            " (resize must be >= crop)");
  list_ = data::list_image_folder(root);
  RAE_CHECK(!list_.entries.empty(), "image folder '", root, "' has no images");
  std::string listing;
  for (const auto& e : list_.entries) listing += e.relpath + "\n";
  listing_hash_ = checksum_hex(xxh64(listing));
}

void ImageStream::open(const StreamOptions& o) {
  RAE_CHECK(o.global_batch >= 1 && o.global_batch % o.world_size == 0,
            "image stream: global batch ", o.global_batch, " for ", o.world_size, " ranks");
  RAE_CHECK(size() >= o.global_batch, "image folder '", list_.root, "' has ", size(),
            " images, fewer than the global batch ", o.global_batch);
  opt_ = o;
  step_ = 0;
  cached_epoch_ = -1;
}

void ImageStream::seek(const nlohmann::json& pos) {
  const int64_t s = pos.at("step").get<int64_t>();
  RAE_CHECK(s >= 0, "image stream: negative position ", s);
  step_ = s;
}

std::string ImageStream::order_signature() const {
  return "images n=" + std::to_string(size()) + " listing_xxh64=" + listing_hash_ +
         " crop=" + std::to_string(crop_) + " resize=" + std::to_string(resize_) +
         " seed=" + std::to_string(opt_.seed) +
         " global_batch=" + std::to_string(opt_.global_batch);
}

std::string ImageStream::describe() const {
  return "image folder '" + list_.root + "' (" + std::to_string(size()) + " images, " +
         std::to_string(num_classes()) + " classes; resize " + std::to_string(resize_) +
         ", random crop " + std::to_string(crop_) + ")";
}

void ImageStream::load(int64_t index, int64_t epoch, uint8_t* out) const {
  const data::ImageEntry& e = list_.entries.at(static_cast<size_t>(index));
  data::Image img = data::decode_image_file(e.path);
  // torchvision Resize(int): the shorter side becomes `resize`, the longer int(resize * l / s).
  const int64_t w = img.width, h = img.height;
  int64_t nw, nh;
  if (w <= h) {
    nw = resize_;
    nh = resize_ * h / w;
  } else {
    nh = resize_;
    nw = resize_ * w / h;
  }
  if (nw != w || nh != h)
    img =
        data::pil_resize(img, static_cast<int>(nw), static_cast<int>(nh), data::PilFilter::Bicubic);
  // RandomCrop: top in [0, h - crop], left in [0, w - crop], uniform.
  const rng::Key k{opt_.seed, rng::Purpose::Crop, static_cast<uint64_t>(epoch),
                   static_cast<uint64_t>(index)};
  const int64_t top = std::min<int64_t>(
      static_cast<int64_t>(rng::uniform_at(k, 0) * static_cast<float>(img.height - crop_ + 1)),
      img.height - crop_);
  const int64_t left = std::min<int64_t>(
      static_cast<int64_t>(rng::uniform_at(k, 1) * static_cast<float>(img.width - crop_ + 1)),
      img.width - crop_);
  for (int64_t y = 0; y < crop_; ++y)
    std::copy_n(img.row(static_cast<int>(top + y)) + left * 3, crop_ * 3, out + y * crop_ * 3);
}

DataBatch ImageStream::next() {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t GB = opt_.global_batch, b = GB / opt_.world_size;
  const int64_t spe = steps_per_epoch(), epoch = step_ / spe, s = step_ % spe;
  if (epoch != cached_epoch_) {
    perm_ = epoch_permutation(size(), opt_.seed, epoch);
    cached_epoch_ = epoch;
  }
  const int64_t first = s * GB + opt_.rank * b;
  DataBatch out;
  out.latents = Tensor::empty({b, crop_, crop_, 3}, DType::U8);
  out.labels = Tensor::empty({b}, DType::I32);
  out.ids = Tensor::empty({b}, DType::I64);
  uint8_t* px = out.latents.data<uint8_t>();
  tbb::parallel_for(int64_t{0}, b,
                    [&](int64_t j) { load(perm_[first + j], epoch, px + j * crop_ * crop_ * 3); });
  for (int64_t j = 0; j < b; ++j) {
    const int64_t idx = perm_[first + j];
    out.labels.data<int32_t>()[j] = list_.entries[idx].label;
    out.ids.data<int64_t>()[j] = idx;
  }
  ++step_;
  out.wait_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace rae::train
