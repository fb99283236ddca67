#include "sampling/decode.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "ops/embed.h"

namespace rae::sampling {

Tensor chw_to_tokens(const Tensor& x) {
  RAE_CHECK(x.ndim() == 4, "chw_to_tokens: expected (N, C, H, W), got ", x.shape().str());
  Tensor f = x.dtype() == DType::F32 ? x : x.cast(DType::F32);
  if (!f.is_contiguous()) f = f.clone();
  Tensor out = Tensor::empty({f.dim(0), f.dim(2) * f.dim(3), f.dim(1)}, DType::F32, f.device());
  ops::patchify(out, f, 1);  // patch 1: token (h, w), channel c
  return out;
}

diffusion::LatentStats load_latent_stats(const std::string& path, int64_t T, int64_t C) {
  safetensors::File f = safetensors::load(path);
  if (f.contains(diffusion::kLatentMeanName) || f.contains(diffusion::kLatentVarName)) {
    diffusion::LatentStats st = diffusion::LatentStats::load(f.tensors, f.metadata, path);
    st.check(T, C, path);
    return st;
  }
  RAE_CHECK(f.contains("mean") || f.contains("var"), path,
            ": no tensor 'mean' or 'var' (a latent statistics file: the cache's "
            "stats.safetensors, a converted release stat.pt, or an export with ",
            diffusion::kLatentMeanName, ")");
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
    return chw_to_tokens(t.view({1, C, s[s.size() - 2], s[s.size() - 1]})).view({T, C});
  };
  diffusion::LatentStats st;
  st.mean = tokens("mean", 0.0);
  st.var = tokens("var", 1.0);
  st.check(T, C, path);
  return st;
}

LatentsFile read_latents_file(const std::string& path, int64_t T, int64_t C) {
  std::map<std::string, Tensor> t;
  std::map<std::string, std::string> meta;
  const bool is_npz = path.size() > 4 && path.compare(path.size() - 4, 4, ".npz") == 0;
  if (is_npz) {
    npz::Reader r(path);
    RAE_CHECK(r.contains("latents"), path, ": no array 'latents'");
    t["latents"] = r.read("latents");
    for (const char* k : {diffusion::kLatentMeanName, diffusion::kLatentVarName})
      if (r.contains(k)) t[k] = r.read(k);
    if (r.contains(kLatentEpsArray)) {
      Tensor e = r.read(kLatentEpsArray).cast(DType::F64);
      RAE_CHECK(e.numel() == 1, path, ": '", kLatentEpsArray, "' must hold one value");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", e.data<double>()[0]);
      meta[diffusion::kLatentEpsKey] = buf;
    }
  } else {
    safetensors::File f = safetensors::load(path);
    RAE_CHECK(f.contains("latents"), path, ": no tensor 'latents'");
    t = std::move(f.tensors);
    meta = std::move(f.metadata);
  }
  LatentsFile out;
  out.stats = diffusion::LatentStats::load(t, meta, path);
  if (out.stats.defined()) out.stats.check(T, C, path);
  Tensor z = t.at("latents");
  z = z.dtype() == DType::F32 ? z.clone() : z.cast(DType::F32);
  const Shape& s = z.shape();
  if (s.size() == 3 && s[1] == T && s[2] == C) {
    out.latents = z;
    return out;
  }
  RAE_CHECK(s.size() == 4 && s[1] == C && s[2] * s[3] == T, path, ": 'latents' has shape ", s.str(),
            "; the decoder takes (N, ", T, ", ", C, ") or (N, ", C, ", H, W) with H*W = ", T);
  out.latents = chw_to_tokens(z);
  return out;
}

bool is_decoder_model(const std::string&, const models::ModelSpec& spec) {
  return spec.type == models::kVitDecoderType;
}

std::unique_ptr<models::VitDecoder> load_decoder(const ModelSource& src, Device device,
                                                 int64_t latent_channels) {
  models::ModelSpec spec;
  LoadedWeights w;
  if (src.kind == ModelSource::Kind::Random) {
    spec = src.spec;
    if (latent_channels > 0 && spec.config.contains("latent_channels"))
      spec.config["latent_channels"] = latent_channels;
  } else {
    w = load_weights(src);
    if (auto recorded = models::spec_from_metadata(w.metadata, w.where)) {
      spec = *recorded;
    } else {  // a bare release state dict
      RAE_CHECK(w.tensors.count("decoder_embed.weight"), w.where,
                ": not a decoder state dict (no model_type metadata and no tensor "
                "'decoder_embed.weight')");
      spec = {models::kVitDecoderType,
              nlohmann::json::parse(models::infer_decoder_config(w.tensors).to_json())};
    }
  }
  std::unique_ptr<nn::Module> module = models::build_model(spec);
  models::module_as<models::VitDecoder>(*module, "ViTDecoder", describe(src));
  std::unique_ptr<models::VitDecoder> m(static_cast<models::VitDecoder*>(module.release()));
  if (src.kind == ModelSource::Kind::Random) {
    m->init(src.seed);
  } else {
    m->params().load_state_dict(w.tensors, w.where);
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

DecodePipeline::DecodePipeline(models::VitDecoder& decoder, const diffusion::LatentStats& stats,
                               Device device, DType act_dtype)
    : decoder_(&decoder),
      device_(device),
      arena_(device, size_t(64) << 20, act_dtype),
      pixel_mean_(decoder.decoder_config().pixel_mean),
      pixel_std_(decoder.decoder_config().pixel_std) {
  if (!stats.defined()) return;  // no statistics: the release's do_normalization = False
  const auto& c = decoder.decoder_config();
  stats.check(c.tokens(), c.latent_channels, "decode");
  stats_ = stats.to(device);
}

Tensor DecodePipeline::on_device(const Tensor& z) const {
  Tensor zd = z.to(device_);
  if (zd.raw() == z.raw() || !zd.is_contiguous()) zd = zd.clone();  // never the caller's memory
  return zd.dtype() == DType::F32 ? zd : zd.cast(DType::F32);
}

Tensor DecodePipeline::normalize(const Tensor& z) const {
  Tensor out = on_device(z);
  if (stats_.defined()) diffusion::normalize_latents(out, stats_);
  return out;
}

Tensor DecodePipeline::decode_device(const Tensor& z) {
  const auto& c = config();
  RAE_CHECK(z.ndim() == 3 && z.dim(1) == c.tokens() && z.dim(2) == c.latent_channels,
            "decode: latents ", z.shape().str(), " do not fit decoder ", c.name, " (", c.tokens(),
            " tokens of ", c.latent_channels, " channels)");
  const int64_t B = z.dim(0), S = c.image_size();
  Tensor zd = on_device(z);
  if (stats_.defined()) diffusion::denormalize_latents(zd, stats_);
  arena_.reset();
  Tensor out = arena_.empty({B, 3, S, S});
  decoder_->infer(arena_, out, zd);
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
