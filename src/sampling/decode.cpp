#include "sampling/decode.h"

#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "ops/modulate.h"
#include "sampling/velocity.h"

namespace rae::sampling {

LatentStats load_latent_stats(const std::string& path, int64_t T, int64_t C) {
  safetensors::File f = safetensors::load(path);
  RAE_CHECK(f.contains("mean") || f.contains("var"), path,
            ": no tensor 'mean' or 'var' (a latent statistics file: the cache's "
            "stats.safetensors or a converted release stat.pt)");
  auto tokens = [&](const char* name, double fill) {
    if (!f.contains(name)) return Tensor::full({T, C}, fill);
    Tensor t = f.get(name);
    t = t.dtype() == DType::F32 ? t.clone() : t.cast(DType::F32);
    const Shape& s = t.shape();
    if (s.size() == 2 && s[0] == T && s[1] == C) return t;
    const bool chw = (s.size() == 3 && s[0] == C && s[1] * s[2] == T) ||
                     (s.size() == 4 && s[0] == 1 && s[1] == C && s[2] * s[3] == T);
    RAE_CHECK(chw, path, ": tensor '", name, "' has shape ", s.str(), ", expected (", T, ", ", C,
              ") tokens or (", C, ", H, W) with H*W = ", T);
    Tensor out = Tensor::empty({T, C});
    const float* src = t.data<float>();
    float* dst = out.data<float>();
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < T; ++i) dst[i * C + c] = src[c * T + i];
    return out;
  };
  LatentStats st;
  st.mean = tokens("mean", 0.0);
  st.var = tokens("var", 1.0);
  const float* v = st.var.data<float>();
  for (int64_t i = 0; i < st.var.numel(); ++i)
    RAE_CHECK(std::isfinite(v[i]) && v[i] + st.eps > 0, path, ": 'var' element ", i, " is ", v[i],
              " (variances must be finite and > -eps)");
  return st;
}

std::unique_ptr<models::VitDecoder> load_decoder(const std::string& source, Device device,
                                                 int64_t latent_channels) {
  std::unique_ptr<models::VitDecoder> m;
  std::string preset;
  uint64_t seed = 0;
  if (parse_random_source(source, &preset, &seed)) {
    models::VitDecoderConfig cfg = models::decoder_preset(preset);
    if (latent_channels > 0) cfg.latent_channels = latent_channels;
    m = std::make_unique<models::VitDecoder>(cfg);
    m->init(seed);
  } else {
    safetensors::File f = safetensors::load(source);
    m = std::make_unique<models::VitDecoder>(models::infer_decoder_config(f.tensors, f.metadata));
    m->params().load_state_dict(f.tensors, source);
  }
  m->to(device);
  return m;
}

void pixel_norm_from_name(const std::string& name, std::array<float, 3>* mean,
                          std::array<float, 3>* std) {
  if (name == "imagenet") {
    *mean = {0.485f, 0.456f, 0.406f}, *std = {0.229f, 0.224f, 0.225f};
  } else if (name == "siglip") {
    *mean = {0.5f, 0.5f, 0.5f}, *std = {0.5f, 0.5f, 0.5f};
  } else {
    RAE_THROW("unknown pixel normalisation '", name, "' (known: imagenet, siglip)");
  }
}

void pixels_to_u8(const float* x, int64_t B, int64_t S, uint8_t* out) {
  const int64_t HW = S * S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < 3; ++c) {
      const float* plane = x + (b * 3 + c) * HW;
      uint8_t* o = out + b * HW * 3 + c;
      for (int64_t i = 0; i < HW; ++i) {
        float v = plane[i];
        v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;  // clamp(0, 1); NaN -> 0
        o[i * 3] = static_cast<uint8_t>(v * 255.0f);  // truncation, as .to(torch.uint8)
      }
    }
}

DecodePipeline::DecodePipeline(models::VitDecoder& decoder, LatentStats stats, Device device,
                               DType act_dtype)
    : decoder_(&decoder),
      device_(device),
      arena_(device, size_t(64) << 20, act_dtype),
      pixel_mean_(decoder.config().pixel_mean),
      pixel_std_(decoder.config().pixel_std) {
  if (!stats.defined()) return;  // no statistics: the release's do_normalization = False
  const auto& c = decoder.config();
  const int64_t T = c.tokens(), C = c.latent_channels, D = T * C;
  RAE_CHECK(stats.mean.numel() == D && stats.var.numel() == D, "decode: statistics of ",
            stats.mean.numel(), " elements for a decoder of ", T, " x ", C, " latents");
  // modulate computes x * (1 + scale) + shift: de-normalise with scale = sqrt(var + eps) - 1,
  // shift = mean; normalise with scale = 1 / sqrt(var + eps) - 1, shift = -mean / sqrt(...).
  Tensor ds = Tensor::empty({1, D}), es = Tensor::empty({1, D}), eh = Tensor::empty({1, D});
  const float* m = stats.mean.data<float>();
  const float* v = stats.var.data<float>();
  for (int64_t i = 0; i < D; ++i) {
    const double sd = std::sqrt(static_cast<double>(v[i]) + stats.eps);
    ds.data<float>()[i] = static_cast<float>(sd - 1.0);
    es.data<float>()[i] = static_cast<float>(1.0 / sd - 1.0);
    eh.data<float>()[i] = static_cast<float>(-m[i] / sd);
  }
  de_scale_ = ds.to(device);
  de_shift_ = stats.mean.view({1, D}).to(device);
  en_scale_ = es.to(device);
  en_shift_ = eh.to(device);
}

Tensor DecodePipeline::denormalize(const Tensor& z) const {
  const int64_t B = z.dim(0), D = z.numel() / B;
  Tensor zd = z.to(device_);
  if (!zd.is_contiguous()) zd = zd.clone();
  if (!de_scale_.defined()) return zd;
  Tensor out = Tensor::empty(z.shape(), DType::F32, device_);
  // (1, B, D) with a per-"sample" (1, D) table: the same row for every latent of the batch.
  ops::modulate_forward(out.view({1, B, D}), zd.view({1, B, D}), de_shift_, de_scale_);
  return out;
}

Tensor DecodePipeline::normalize(const Tensor& z) const {
  const int64_t B = z.dim(0), D = z.numel() / B;
  Tensor zc = z.is_contiguous() ? z : z.clone();
  if (!en_scale_.defined()) return zc;
  Tensor out = Tensor::empty(z.shape(), DType::F32, z.device());
  ops::modulate_forward(out.view({1, B, D}), zc.view({1, B, D}), en_shift_, en_scale_);
  return out;
}

Tensor DecodePipeline::decode_device(const Tensor& z) {
  const auto& c = decoder_->config();
  RAE_CHECK(z.ndim() == 3 && z.dim(1) == c.tokens() && z.dim(2) == c.latent_channels,
            "decode: latents ", z.shape().str(), " do not fit decoder ", c.name, " (", c.tokens(),
            " tokens of ", c.latent_channels, " channels)");
  const int64_t B = z.dim(0), S = c.image_size();
  Tensor zd = denormalize(z);
  arena_.reset();
  Tensor out = arena_.empty({B, 3, S, S});
  decoder_->forward(arena_, out, zd);
  return out;
}

Tensor DecodePipeline::decode_pixels(const Tensor& z) {
  const int64_t B = z.dim(0), S = image_size();
  Tensor out = decode_device(z);
  Tensor px = out.to(Device::cpu());
  if (px.dtype() != DType::F32)
    px = px.cast(DType::F32);
  else if (px.raw() == out.raw())
    px = px.clone();  // the arena is rewound by the next call
  // x * std + mean per channel, in float32 as torch does it (two roundings).
  float* p = px.data<float>();
  const int64_t HW = S * S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < 3; ++ch) {
      float* plane = p + (b * 3 + ch) * HW;
      const float sd = pixel_std_[ch], mu = pixel_mean_[ch];
      for (int64_t i = 0; i < HW; ++i) {
        const float scaled = plane[i] * sd;
        plane[i] = scaled + mu;
      }
    }
  return px;
}

std::vector<uint8_t> DecodePipeline::decode_u8(const Tensor& z) {
  Tensor px = decode_pixels(z);
  const int64_t B = px.dim(0), S = px.dim(2);
  std::vector<uint8_t> out(static_cast<size_t>(B * S * S * 3));
  pixels_to_u8(px.data<float>(), B, S, out.data());
  return out;
}

}  // namespace rae::sampling
