// Images for stage-1 training, as the release's train_stage1.py loads them: an ImageFolder tree
// (data/image_folder.h), each image decoded to RGB (data/image_decode.h, PIL-equivalent),
// resized so its shorter side is `resize` (torchvision Resize(int): the longer side
// int(resize * long / short), PIL bicubic: data::pil_resize), then a random crop of
// `crop` x `crop` (torchvision RandomCrop: top-left uniform over the valid positions), no flip.
//
// A BatchStream (train/data_source.h) whose batches carry the pixels (b, crop, crop, 3) U8 in
// DataBatch::latents. Order: a permutation per epoch (train::epoch_permutation, purpose Shuffle),
// drop-last global batches, rank r takes the r-th slice of each; the crop position is drawn from
// the counter RNG keyed by (seed, Crop, epoch, image index), so a sample's pixels do not depend
// on the rank count. Images are decoded in parallel (oneTBB); an unreadable image is an error
// naming the file.
#pragma once
#include <memory>
#include <string>

#include "data/image_folder.h"
#include "train/data_source.h"

namespace rae::train {

class ImageStream : public BatchStream {
 public:
  ImageStream(const std::string& root, int64_t crop, int64_t resize);
  int64_t size() const override { return static_cast<int64_t>(list_.entries.size()); }
  int64_t grid() const override { return crop_; }  // the image side (no token grid)
  int64_t channels() const override { return 3; }
  int64_t num_classes() const override { return static_cast<int64_t>(list_.classes.size()); }
  void open(const StreamOptions& o) override;
  int64_t steps_per_epoch() const override { return size() / opt_.global_batch; }
  DataBatch next() override;
  nlohmann::json position() const override { return {{"step", step_}}; }
  void seek(const nlohmann::json& pos) override;
  std::string order_signature() const override;
  diffusion::LatentStats latent_stats() const override { return {}; }
  std::string describe() const override;

  // Image `index` of the listing, resized and cropped as in epoch `epoch` (tests; next()).
  void load(int64_t index, int64_t epoch, uint8_t* out) const;

 private:
  data::ImageFolderList list_;
  int64_t crop_, resize_;
  std::string listing_hash_;
  StreamOptions opt_;
  int64_t step_ = 0, cached_epoch_ = -1;
  std::vector<int64_t> perm_;
};

}  // namespace rae::train
