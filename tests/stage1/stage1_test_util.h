// Helpers of the stage-1 tests: an in-memory image stream, the tiny configs of the goldens, and
// the synthetic weights of tests/reference/make_stage1_golden.py (the per-name kinds there).
#pragma once
#include <cmath>
#include <memory>
#include <string>

#include "models/dino_disc.h"
#include "models/synthetic_weights.h"
#include "models/vit_decoder.h"
#include "support/util.h"
#include "train/config.h"
#include "train/data_source.h"
#include "train/stage1.h"
#include "train/stage1_config.h"

namespace rae::test::stage1 {

// Images (N, S, S, 3) U8 in memory, sample i of class i % classes; the image stream's order
// (train::epoch_permutation, drop-last global batches, rank slices).
class TensorImageStream : public train::BatchStream {
 public:
  TensorImageStream(Tensor images, int64_t classes = 2)
      : images_(std::move(images)), classes_(classes) {}
  int64_t size() const override { return images_.dim(0); }
  int64_t grid() const override { return images_.dim(1); }
  int64_t channels() const override { return 3; }
  int64_t num_classes() const override { return classes_; }
  void open(const train::StreamOptions& o) override {
    opt_ = o;
    step_ = 0;
  }
  int64_t steps_per_epoch() const override { return size() / opt_.global_batch; }
  train::DataBatch next() override {
    const int64_t GB = opt_.global_batch, b = GB / opt_.world_size;
    const int64_t spe = steps_per_epoch(), epoch = step_ / spe, s = step_ % spe;
    const std::vector<int64_t> perm = train::epoch_permutation(size(), opt_.seed, epoch);
    const int64_t S = images_.dim(1), px = S * S * 3;
    train::DataBatch out;
    out.latents = Tensor::empty({b, S, S, 3}, DType::U8);
    out.labels = Tensor::empty({b}, DType::I32);
    out.ids = Tensor::empty({b}, DType::I64);
    for (int64_t j = 0; j < b; ++j) {
      const int64_t idx = perm[s * GB + opt_.rank * b + j];
      std::copy_n(images_.data<uint8_t>() + idx * px, px, out.latents.data<uint8_t>() + j * px);
      out.labels.data<int32_t>()[j] = static_cast<int32_t>(idx % classes_);
      out.ids.data<int64_t>()[j] = idx;
    }
    ++step_;
    return out;
  }
  nlohmann::json position() const override { return {{"step", step_}}; }
  void seek(const nlohmann::json& p) override { step_ = p.at("step").get<int64_t>(); }
  std::string order_signature() const override {
    return "tensor-images n=" + std::to_string(size()) + " seed=" + std::to_string(opt_.seed);
  }
  diffusion::LatentStats latent_stats() const override { return {}; }
  std::string describe() const override { return "in-memory images"; }

 private:
  Tensor images_;
  int64_t classes_;
  train::StreamOptions opt_;
  int64_t step_ = 0;
};

// The golden's config (make_stage1_golden.py): 16 px images, the tiny DINOv2 encoder at 16 px,
// a 16-wide 2-layer decoder, LPIPS and the "tiny" DINO trunk with synthetic weights, DiffAug
// with cutout 0.25, every loss term from step 0.
inline train::Stage1Config golden_stage1_config() {
  train::Stage1Config c;
  c.decoder_preset = "ViT-micro";
  c.encoder_input_size = 16;
  c.image_size = 16;
  c.resize = 16;
  c.lpips_start_epoch = 0;
  c.disc_start_epoch = 0;
  c.disc_update_start_epoch = 0;
  c.lpips = "random";
  c.dino = "random-tiny";
  c.recipe = "tiny";
  c.disc_input_size = 32;
  c.cutout = 0.25;
  c.recon_every = 0;
  return c;
}

inline train::TrainConfig golden_train_config(int64_t global_batch) {
  train::TrainConfig t;
  t.global_batch_size = global_batch;
  t.steps = 1;
  t.seed = 0;
  t.clip_grad = 0;
  t.schedule = "constant";
  t.progress = false;
  return t;
}

inline std::string tiny_encoder_dir() {
  return golden_path("encoders/dinov2-reg-tiny");
}

// (offset, a) of the golden's decoder and discriminator-head parameters (PyTorch names/shapes).
inline std::pair<double, double> decoder_kind(const std::string& n, const Shape& s) {
  const bool norm = n.find("layernorm") != std::string::npos || n.rfind("decoder_norm", 0) == 0;
  if (norm && n.ends_with(".weight")) return {1.0, 0.4};
  if (n.ends_with(".weight") && s.size() == 2) return {-1.0, 1.0 / std::sqrt(double(s[1]))};
  return {-1.0, 0.05};
}
inline std::pair<double, double> head_kind(const std::string& n, const Shape& s) {
  if (n.ends_with("weight_orig")) return {-1.0, 1.0 / std::sqrt(double(s[1] * s[2]))};
  if (n.ends_with(".weight")) return {1.0, 0.4};
  return {-1.0, 0.05};
}

// (O, k, C) channels-last conv weight <-> PyTorch's (O, C, k).
inline Tensor conv1d_from_torch(const Tensor& w) {
  const int64_t O = w.dim(0), C = w.dim(1), K = w.dim(2);
  Tensor out = Tensor::empty({O, K, C});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < K; ++k)
        out.data<float>()[(o * K + k) * C + c] = w.data<float>()[(o * C + c) * K + k];
  return out;
}
// v of PyTorch's (C, k) column order -> ours (k, C).
inline Tensor v_from_torch(const Tensor& v, int64_t C, int64_t K) {
  Tensor out = Tensor::empty({C * K});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) out.data<float>()[k * C + c] = v.data<float>()[c * K + k];
  return out;
}

// The decoder's parameters from the formula (its names and shapes are PyTorch's).
inline void fill_decoder(models::VitDecoder& d) {
  nn::ParamStore& ps = d.params();
  for (size_t id = 0; id < ps.params().size(); ++id) {
    const auto& p = ps.params()[id];
    const auto [off, a] = decoder_kind(p.name, p.shape);
    Tensor(ps.value(static_cast<int>(id)))
        .copy_from(models::synthetic_tensor(p.name, p.shape, off, a));
  }
}
// The heads' parameters from the formula (conv weights permuted to channels last).
inline void fill_heads(models::DinoDiscHeads& h) {
  nn::ParamStore& ps = h.params();
  for (size_t id = 0; id < ps.params().size(); ++id) {
    const auto& p = ps.params()[id];
    Tensor v;
    if (p.name.ends_with("weight_orig")) {
      const Shape torch_shape = {p.shape[0], p.shape[2], p.shape[1]};
      const auto [off, a] = head_kind(p.name, torch_shape);
      v = conv1d_from_torch(models::synthetic_tensor(p.name, torch_shape, off, a));
    } else {
      const auto [off, a] = head_kind(p.name, p.shape);
      v = models::synthetic_tensor(p.name, p.shape, off, a);
    }
    Tensor(ps.value(static_cast<int>(id))).copy_from(v);
  }
}

}  // namespace rae::test::stage1
