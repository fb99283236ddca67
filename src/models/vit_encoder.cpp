#include "models/vit_encoder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/vit_encoder_resample.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/image.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace rae::models {

const char* encoder_family_name(EncoderFamily f) {
  switch (f) {
    case EncoderFamily::Dinov2:
      return "dinov2";
    case EncoderFamily::Siglip:
      return "siglip";
    case EncoderFamily::Mae:
      return "mae";
    case EncoderFamily::Dino:
      return "dino";
  }
  return "?";
}

Tensor interpolate_pos_grid(const Tensor& pos, int64_t src_grid, int64_t dst_grid, bool antialias) {
  RAE_CHECK(pos.ndim() == 2 && pos.dim(0) == src_grid * src_grid, "interpolate_pos_grid: pos ",
            pos.shape().str(), " is not a ", src_grid, "x", src_grid, " grid");
  const int64_t C = pos.dim(1);
  Tensor src = pos.to(Device::cpu()).cast(DType::F32);
  // (G*G, C) -> planar (C, G, G), as HF's reshape + permute(0, 3, 1, 2).
  std::vector<float> planar(static_cast<size_t>(C * src_grid * src_grid));
  const float* s = src.data<float>();
  for (int64_t t = 0; t < src_grid * src_grid; ++t)
    for (int64_t c = 0; c < C; ++c) planar[c * src_grid * src_grid + t] = s[t * C + c];
  const int G = static_cast<int>(src_grid), g = static_cast<int>(dst_grid);
  // HF passes size=(g, g): PyTorch's scale is then in / out.
  InterpWeights w =
      torch_bicubic_weights(G, g, static_cast<double>(static_cast<float>(G) / g), antialias);
  std::vector<float> out = resample_planar(planar, static_cast<int>(C), G, G, w, w);
  Tensor res = Tensor::empty({dst_grid * dst_grid, C});
  float* d = res.data<float>();
  for (int64_t t = 0; t < dst_grid * dst_grid; ++t)
    for (int64_t c = 0; c < C; ++c) d[t * C + c] = out[c * dst_grid * dst_grid + t];
  return res;
}

Tensor VitEncoder::forward(const Tensor& pixels) const {
  const VitEncoderConfig& c = cfg_;
  RAE_CHECK(pixels.ndim() == 4 && pixels.dim(1) == 3 && pixels.dim(2) == c.input_size &&
                pixels.dim(3) == c.input_size && pixels.dtype() == DType::F32,
            "encoder ", id_, ": pixels must be f32 (B, 3, ", c.input_size, ", ", c.input_size,
            "), got ", pixels.str());
  const Device dev = device_;
  Tensor px = pixels.to(dev);
  if (!px.is_contiguous()) px = px.clone();
  const int64_t B = px.dim(0), C = c.hidden, N = c.tokens(), P = c.prefix_tokens(), T = P + N;
  const int64_t H = c.heads, D = C / H, p = c.patch;

  // Patch embedding: the stride-p convolution as patchify + linear.
  Tensor patches = Tensor::empty({B, N, p * p * 3}, DType::F32, dev);
  ops::patchify(patches, px, p);
  Tensor emb = Tensor::empty({B * N, C}, DType::F32, dev);
  ops::linear_forward(emb, patches.view({B * N, p * p * 3}), patch_w, patch_b);

  // Sequence: [prefix tokens | patches + positions] per image.
  Tensor x = Tensor::empty({B, T, C}, DType::F32, dev);
  for (int64_t b = 0; b < B; ++b) {
    Tensor xb = x.select(0, b);
    if (P > 0) xb.narrow(0, 0, P).copy_from(prefix_rows);
    ops::add(xb.narrow(0, P, N), emb.narrow(0, b * N, N), patch_pos);
  }

  Tensor xf = x.view({B * T, C});
  Tensor h = Tensor::empty({B * T, C}, DType::F32, dev);
  Tensor mean = Tensor::empty({B * T}, DType::F32, dev),
         rstd = Tensor::empty({B * T}, DType::F32, dev);
  Tensor qkv = Tensor::empty({B * T, 3 * C}, DType::F32, dev);
  Tensor attn = Tensor::empty({B, T, H, D}, DType::F32, dev);
  Tensor lse = Tensor::empty({B, H, T}, DType::F32, dev);
  Tensor proj = Tensor::empty({B * T, C}, DType::F32, dev);
  Tensor mlp = Tensor::empty({B * T, c.mlp_hidden}, DType::F32, dev);
  Tensor act = Tensor::empty({B * T, c.mlp_hidden}, DType::F32, dev);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (const Layer& L : layers_) {
    ops::layernorm_forward(h, mean, rstd, xf, L.ln1_w, L.ln1_b, c.ln_eps);
    ops::linear_forward(qkv, h, L.qkv_w, L.qkv_b);
    ops::attention_forward(attn, lse, qkv.view({B, T, 3, H, D}), scale);
    ops::linear_forward(proj, attn.view({B * T, C}), L.proj_w, L.proj_b);  // layer scale folded in
    ops::add_(xf, proj);
    ops::layernorm_forward(h, mean, rstd, xf, L.ln2_w, L.ln2_b, c.ln_eps);
    ops::linear_forward(mlp, h, L.fc1_w, L.fc1_b);
    ops::gelu_forward(act, mlp, c.gelu);
    ops::linear_forward(proj, act, L.fc2_w, L.fc2_b);
    ops::add_(xf, proj);
  }
  // Final LayerNorm without affine (RAE), then drop the prefix tokens.
  ops::layernorm_forward(h, mean, rstd, xf, Tensor(), Tensor(), c.ln_eps);
  Tensor hv = h.view({B, T, C});
  if (P == 0) return hv;
  Tensor out = Tensor::empty({B, N, C}, DType::F32, dev);
  for (int64_t b = 0; b < B; ++b) out.select(0, b).copy_from(hv.select(0, b).narrow(0, P, N));
  return out;
}

namespace {

Tensor get(const std::map<std::string, Tensor>& m, const std::string& name) {
  auto it = m.find(name);
  RAE_CHECK(it != m.end(), "encoder weights: missing tensor '", name, "'");
  return it->second.to(Device::cpu()).cast(DType::F32);
}

Tensor expect(const Tensor& t, const Shape& shape, const std::string& name) {
  RAE_CHECK(t.shape() == shape, "encoder weights: tensor '", name, "' has shape ", t.shape().str(),
            ", expected ", shape.str());
  return t;
}

// w (O, I) * s (O) row-wise and b (O) * s: folds a layer scale applied after the linear.
void scale_rows(Tensor& w, Tensor& b, const Tensor& s) {
  const int64_t O = w.dim(0), I = w.dim(1);
  float* wd = w.data<float>();
  float* bd = b.data<float>();
  const float* sd = s.data<float>();
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t i = 0; i < I; ++i) wd[o * I + i] *= sd[o];
    bd[o] *= sd[o];
  }
}

// Concatenates contiguous copies of `parts` into one flat F32 tensor (callers view it).
Tensor cat_rows(const std::vector<Tensor>& parts) {
  int64_t total = 0;
  for (const auto& p : parts) total += p.numel();
  Tensor out = Tensor::empty({total});
  float* d = out.data<float>();
  for (const auto& p : parts) {
    Tensor c = p.is_contiguous() ? p : p.clone();
    std::copy_n(c.data<float>(), c.numel(), d);
    d += c.numel();
  }
  return out;
}

}  // namespace

VitEncoder VitEncoder::from_hf_tensors(const VitEncoderConfig& cfg,
                                       const std::map<std::string, Tensor>& m,
                                       const std::string& pre, Device device) {
  VitEncoder e;
  e.cfg_ = cfg;
  e.device_ = device;
  const int64_t C = cfg.hidden, p = cfg.patch, M = cfg.mlp_hidden;
  RAE_CHECK(C % cfg.heads == 0, "encoder config: hidden ", C, " not divisible by heads ",
            cfg.heads);
  RAE_CHECK(cfg.input_size % p == 0, "encoder input size ", cfg.input_size,
            " is not a multiple of the patch ", p);
  const bool dino = cfg.family == EncoderFamily::Dinov2,
             siglip = cfg.family == EncoderFamily::Siglip;
  const std::string emb = pre + "embeddings.";

  // Patch embedding: conv weight (C, 3, p, p) -> (C, p, p, 3) to match patchify's token layout.
  std::string pw_name =
      siglip ? emb + "patch_embedding.weight" : emb + "patch_embeddings.projection.weight";
  std::string pb_name =
      siglip ? emb + "patch_embedding.bias" : emb + "patch_embeddings.projection.bias";
  Tensor cw = expect(get(m, pw_name), {C, 3, p, p}, pw_name);
  Tensor pw = Tensor::empty({C, p * p * 3});
  for (int64_t o = 0; o < C; ++o)
    for (int64_t ci = 0; ci < 3; ++ci)
      for (int64_t i = 0; i < p; ++i)
        for (int64_t j = 0; j < p; ++j)
          pw.data<float>()[o * p * p * 3 + (i * p + j) * 3 + ci] =
              cw.data<float>()[((o * 3 + ci) * p + i) * p + j];
  e.patch_w = pw;
  e.patch_b = expect(get(m, pb_name), {C}, pb_name);

  // Position embeddings (and the CLS position), interpolated to the input grid as HF does.
  const int64_t g = cfg.grid();
  Tensor pos_all;
  int64_t npos;
  if (siglip) {
    pos_all = get(m, emb + "position_embedding.weight");  // (G*G, C), no CLS
    npos = pos_all.dim(0);
  } else {
    Tensor pe = get(m, emb + "position_embeddings");  // (1, 1 + G*G, C)
    RAE_CHECK(pe.ndim() == 3 && pe.dim(2) == C, "encoder weights: bad position_embeddings ",
              pe.shape().str());
    pos_all = pe.view({pe.dim(1), C});
    npos = pe.dim(1) - 1;
  }
  const int64_t G = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(npos))));
  RAE_CHECK(G * G == npos, "encoder weights: ", npos, " position embeddings are not a square grid");
  Tensor grid_pos = siglip ? pos_all : pos_all.narrow(0, 1, npos);
  // HF skips interpolation when the patch count already matches (square inputs).
  e.patch_pos =
      (G == g) ? grid_pos.clone() : interpolate_pos_grid(grid_pos, G, g, /*antialias=*/dino);

  std::vector<Tensor> prefix;
  if (!siglip) {
    Tensor cls =
        expect(get(m, emb + "cls_token"), {1, 1, C}, emb + "cls_token").view({1, C}).clone();
    const float* cls_pos = pos_all.data<float>();  // row 0: the CLS position
    for (int64_t i = 0; i < C; ++i) cls.data<float>()[i] += cls_pos[i];
    prefix.push_back(cls);
    if (cfg.num_registers > 0) {
      Tensor reg = expect(get(m, emb + "register_tokens"), {1, cfg.num_registers, C},
                          emb + "register_tokens");
      prefix.push_back(reg.view({cfg.num_registers, C}));  // registers carry no position
    }
    e.prefix_rows = cat_rows(prefix).view({cfg.prefix_tokens(), C});
  }

  for (int64_t l = 0; l < cfg.layers; ++l) {
    Layer L;
    auto P = [&](const std::string& s) { return pre + s; };
    std::string lp = siglip ? "encoder.layers." + std::to_string(l) + "."
                            : "encoder.layer." + std::to_string(l) + ".";
    auto W = [&](const std::string& s, const Shape& shape) {
      return expect(get(m, P(lp + s)), shape, P(lp + s));
    };
    std::string q, k, v, o, ln1, ln2, f1, f2;
    if (siglip) {
      q = "self_attn.q_proj", k = "self_attn.k_proj", v = "self_attn.v_proj",
      o = "self_attn.out_proj";
      ln1 = "layer_norm1", ln2 = "layer_norm2", f1 = "mlp.fc1", f2 = "mlp.fc2";
    } else {
      q = "attention.attention.query", k = "attention.attention.key",
      v = "attention.attention.value";
      o = "attention.output.dense";
      ln1 = dino ? "norm1" : "layernorm_before";
      ln2 = dino ? "norm2" : "layernorm_after";
      f1 = dino ? "mlp.fc1" : "intermediate.dense";
      f2 = dino ? "mlp.fc2" : "output.dense";
    }
    L.ln1_w = W(ln1 + ".weight", {C});
    L.ln1_b = W(ln1 + ".bias", {C});
    L.ln2_w = W(ln2 + ".weight", {C});
    L.ln2_b = W(ln2 + ".bias", {C});
    // qkv packed as [q | k | v] rows so the output views as (B, T, 3, H, D).
    L.qkv_w =
        cat_rows({W(q + ".weight", {C, C}), W(k + ".weight", {C, C}), W(v + ".weight", {C, C})})
            .view({3 * C, C});
    L.qkv_b = cat_rows({W(q + ".bias", {C}), W(k + ".bias", {C}), W(v + ".bias", {C})});
    L.proj_w = W(o + ".weight", {C, C});
    L.proj_b = W(o + ".bias", {C});
    L.fc1_w = W(f1 + ".weight", {M, C});
    L.fc1_b = W(f1 + ".bias", {M});
    L.fc2_w = W(f2 + ".weight", {C, M});
    L.fc2_b = W(f2 + ".bias", {C});
    if (dino) {  // layer scale after attention and MLP, folded into the output projections
      scale_rows(L.proj_w, L.proj_b, W("layer_scale1.lambda1", {C}));
      scale_rows(L.fc2_w, L.fc2_b, W("layer_scale2.lambda1", {C}));
    }
    for (Tensor* t : {&L.ln1_w, &L.ln1_b, &L.qkv_w, &L.qkv_b, &L.proj_w, &L.proj_b, &L.ln2_w,
                      &L.ln2_b, &L.fc1_w, &L.fc1_b, &L.fc2_w, &L.fc2_b})
      *t = t->to(device);
    e.layers_.push_back(std::move(L));
  }
  e.patch_w = e.patch_w.to(device);
  e.patch_b = e.patch_b.to(device);
  e.patch_pos = e.patch_pos.to(device);
  if (e.prefix_rows.defined()) e.prefix_rows = e.prefix_rows.to(device);
  e.id_ = std::string(encoder_family_name(cfg.family)) + (cfg.num_registers ? "-reg" : "") + "-h" +
          std::to_string(C) + "-l" + std::to_string(cfg.layers) + "-p" + std::to_string(p) + "-in" +
          std::to_string(cfg.input_size);
  return e;
}

void VitEncoder::to(Device device) {
  for (Layer& L : layers_)
    for (Tensor* t : {&L.ln1_w, &L.ln1_b, &L.qkv_w, &L.qkv_b, &L.proj_w, &L.proj_b, &L.ln2_w,
                      &L.ln2_b, &L.fc1_w, &L.fc1_b, &L.fc2_w, &L.fc2_b})
      *t = t->to(device);
  patch_w = patch_w.to(device);
  patch_b = patch_b.to(device);
  patch_pos = patch_pos.to(device);
  if (prefix_rows.defined()) prefix_rows = prefix_rows.to(device);
  device_ = device;
}

VitEncoder VitEncoder::from_timm_tensors(const VitEncoderConfig& cfg,
                                         const std::map<std::string, Tensor>& m,
                                         const std::string& where, Device device) {
  const int64_t C = cfg.hidden, p = cfg.patch, M = cfg.mlp_hidden;
  RAE_CHECK(C % cfg.heads == 0 && cfg.input_size % p == 0, where, ": hidden ", C, " / heads ",
            cfg.heads, " or input ", cfg.input_size, " / patch ", p, " does not divide");
  auto W = [&](const std::string& name, const Shape& shape) {
    try {
      return expect(get(m, name), shape, name);
    } catch (const Error& e) {
      RAE_THROW(where, ": ", e.what());
    }
  };
  // The same tensors under the names from_hf_tensors reads (DINOv2's, no layer scale), so one
  // loader places them.
  std::map<std::string, Tensor> hf;
  hf["embeddings.patch_embeddings.projection.weight"] = W("patch_embed.proj.weight", {C, 3, p, p});
  hf["embeddings.patch_embeddings.projection.bias"] = W("patch_embed.proj.bias", {C});
  hf["embeddings.cls_token"] = W("cls_token", {1, 1, C});
  Tensor pe = get(m, "pos_embed");
  RAE_CHECK(pe.ndim() == 3 && pe.dim(2) == C, where, ": bad pos_embed ", pe.shape().str());
  const int64_t G =
      static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pe.dim(1) - 1))));
  RAE_CHECK(G * G == pe.dim(1) - 1, where, ": pos_embed ", pe.shape().str(),
            " is not a CLS row plus a square grid");
  const int64_t g = cfg.grid();
  if (G != g) {  // the release's inter_pos_embed: bilinear, align_corners=False
    Tensor src = Tensor::empty({1, G, G, C});
    src.view({G * G, C}).copy_from(pe.view({G * G + 1, C}).narrow(0, 1, G * G));
    Tensor dst = Tensor::empty({1, g, g, C});
    ops::resize_bilinear_forward(dst, src);
    Tensor both = Tensor::empty({1, g * g + 1, C});
    both.view({g * g + 1, C}).narrow(0, 0, 1).copy_from(pe.view({G * G + 1, C}).narrow(0, 0, 1));
    both.view({g * g + 1, C}).narrow(0, 1, g * g).copy_from(dst.view({g * g, C}));
    pe = both;
  }
  hf["embeddings.position_embeddings"] = pe;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string t = "blocks." + std::to_string(l) + ".";
    const std::string h = "encoder.layer." + std::to_string(l) + ".";
    for (const char* n : {"norm1", "norm2"}) {
      hf[h + n + ".weight"] = W(t + n + ".weight", {C});
      hf[h + n + ".bias"] = W(t + n + ".bias", {C});
    }
    Tensor qkv_w = W(t + "attn.qkv.weight", {3 * C, C}), qkv_b = W(t + "attn.qkv.bias", {3 * C});
    const char* names[3] = {"query", "key", "value"};
    for (int k = 0; k < 3; ++k) {
      hf[h + "attention.attention." + names[k] + ".weight"] = qkv_w.narrow(0, k * C, C);
      Tensor b = qkv_b.narrow(0, k * C, C).clone();
      // The release zeroes the key bias (it shifts every logit of a query alike: softmax ignores
      // it); done here too, so the numbers match.
      if (k == 1) b.zero_();
      hf[h + "attention.attention." + names[k] + ".bias"] = b;
    }
    hf[h + "attention.output.dense.weight"] = W(t + "attn.proj.weight", {C, C});
    hf[h + "attention.output.dense.bias"] = W(t + "attn.proj.bias", {C});
    hf[h + "mlp.fc1.weight"] = W(t + "mlp.fc1.weight", {M, C});
    hf[h + "mlp.fc1.bias"] = W(t + "mlp.fc1.bias", {M});
    hf[h + "mlp.fc2.weight"] = W(t + "mlp.fc2.weight", {C, M});
    hf[h + "mlp.fc2.bias"] = W(t + "mlp.fc2.bias", {C});
    hf[h + "layer_scale1.lambda1"] = Tensor::full({C}, 1.0);
    hf[h + "layer_scale2.lambda1"] = Tensor::full({C}, 1.0);
  }
  VitEncoderConfig hc = cfg;
  hc.family = EncoderFamily::Dinov2;  // the HF DINOv2 layout of the same network
  hc.num_registers = 0;
  VitEncoder e = from_hf_tensors(hc, hf, "", device);
  e.cfg_ = cfg;
  e.id_ = "dino-h" + std::to_string(C) + "-l" + std::to_string(cfg.layers) + "-p" +
          std::to_string(p) + "-in" + std::to_string(cfg.input_size);
  return e;
}

}  // namespace rae::models
