// The frozen ViT as a differentiable feature extractor (the GAN discriminator's DINO trunk):
// hidden states after chosen blocks, and the gradient of a loss on them w.r.t. the pixels.
// Weights stay frozen; activations are F32 on the encoder's device.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/synthetic_weights.h"
#include "models/vit_encoder.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace rae::models {

VitEncoderConfig dino_recipe(const std::string& name) {
  VitEncoderConfig c;
  c.family = EncoderFamily::Dino;
  c.layers = 12;
  c.ln_eps = 1e-6;
  c.gelu = ops::GeluKind::Tanh;  // MLPNoDrop: nn.GELU(approximate="tanh")
  c.input_size = 224;
  c.config_image_size = 224;
  if (name == "S_8") {
    c.hidden = 384, c.heads = 6, c.patch = 8;
  } else if (name == "S_16") {
    c.hidden = 384, c.heads = 6, c.patch = 16;
  } else if (name == "B_16") {
    c.hidden = 768, c.heads = 12, c.patch = 16;
  } else if (name == "tiny") {
    c.hidden = 16, c.heads = 2, c.patch = 8;
  } else {
    RAE_THROW("unknown DINO discriminator recipe '", name, "' (S_8, S_16, B_16, tiny)");
  }
  c.mlp_hidden = 4 * c.hidden;
  return c;
}

namespace {

Tensor f32(nn::Arena& A, const Shape& s) {
  return A.empty(s, DType::F32);
}
Tensor f32z(nn::Arena& A, const Shape& s) {
  return A.zeros(s, DType::F32);
}

}  // namespace

// ViT-like scales (unit-variance-preserving linears scaled down, LayerNorm weights near 1).
std::map<std::string, Tensor> synthetic_dino_tensors(const VitEncoderConfig& c) {
  const int64_t C = c.hidden, M = c.mlp_hidden, p = c.patch, G = c.config_image_size / p;
  std::map<std::string, Tensor> m;
  auto sym = [&](const std::string& n, const Shape& s, double a) {
    m[n] = synthetic_tensor(n, s, -1.0, a);
  };
  sym("patch_embed.proj.weight", {C, 3, p, p}, std::sqrt(3.0 / (3.0 * p * p)));
  sym("patch_embed.proj.bias", {C}, 0.02);
  sym("cls_token", {1, 1, C}, 0.05);
  sym("pos_embed", {1, 1 + G * G, C}, 0.05);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string t = "blocks." + std::to_string(l) + ".";
    for (const char* n : {"norm1", "norm2"}) {
      m[t + n + ".weight"] = synthetic_tensor(t + n + ".weight", {C}, 1.0, 0.4);  // [0.4, 1.2)
      sym(t + n + ".bias", {C}, 0.05);
    }
    sym(t + "attn.qkv.weight", {3 * C, C}, 1.0 / std::sqrt(static_cast<double>(C)));
    sym(t + "attn.qkv.bias", {3 * C}, 0.02);
    sym(t + "attn.proj.weight", {C, C}, 0.5 / std::sqrt(static_cast<double>(C)));
    sym(t + "attn.proj.bias", {C}, 0.02);
    sym(t + "mlp.fc1.weight", {M, C}, 1.0 / std::sqrt(static_cast<double>(C)));
    sym(t + "mlp.fc1.bias", {M}, 0.02);
    sym(t + "mlp.fc2.weight", {C, M}, 0.5 / std::sqrt(static_cast<double>(M)));
    sym(t + "mlp.fc2.bias", {C}, 0.02);
  }
  return m;
}

VitEncoder VitEncoder::load_dino(const std::string& source, const std::string& recipe,
                                 int64_t input_size, Device device) {
  VitEncoderConfig c = dino_recipe(recipe);
  if (input_size > 0) c.input_size = input_size;
  const std::string pre = "random-";
  VitEncoder e;
  if (source.rfind(pre, 0) == 0) {
    RAE_CHECK(source.substr(pre.size()) == recipe, "DINO source '", source,
              "' does not match the recipe '", recipe, "'");
    e = from_timm_tensors(c, synthetic_dino_tensors(c), source, device);
    e.weights_source_ = "preset:" + source;
  } else {
    safetensors::File f = safetensors::load(source);
    e = from_timm_tensors(c, f.tensors, source, device);
    e.weights_source_ = source;
  }
  return e;
}

std::vector<Tensor> VitEncoder::forward_blocks(nn::Arena& A, const Tensor& px,
                                               const std::vector<int>& blocks, Saved* saved) const {
  const VitEncoderConfig& c = cfg_;
  RAE_CHECK(px.ndim() == 4 && px.dim(1) == c.input_size && px.dim(2) == c.input_size &&
                px.dim(3) == 3 && px.dtype() == DType::F32 && px.device() == device_,
            "encoder ", id_, ": pixels must be f32 (B, ", c.input_size, ", ", c.input_size,
            ", 3) on ", device_.str(), ", got ", px.str());
  RAE_CHECK(!blocks.empty(), "forward_blocks: no blocks asked for");
  int last = 0;
  for (int b : blocks) {
    RAE_CHECK(b >= 0 && b < c.layers, "forward_blocks: block ", b, " of ", c.layers);
    last = std::max(last, b);
  }
  const int64_t B = px.dim(0), C = c.hidden, N = c.tokens(), P = c.prefix_tokens(), T = P + N;
  const int64_t H = c.heads, D = C / H, p = c.patch, g = c.grid(), Mh = c.mlp_hidden;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  if (saved) {
    saved->pixels = px;
    saved->blocks = blocks;
    saved->layers.clear();
  }
  // Patch embedding: the stride-p convolution on channels-last pixels; patch_w is (C, p*p*3) in
  // (p_h, p_w, c) order, i.e. a (C, p, p, 3) channels-last kernel.
  Tensor emb = f32(A, {B, g, g, C});
  ops::conv2d_forward(emb, px, patch_w.view({C, p, p, 3}), patch_b,
                      ops::Conv2dParams{p, p, 0, 0, false});
  Tensor x = f32(A, {B, T, C});
  for (int64_t b = 0; b < B; ++b) {
    Tensor xb = x.select(0, b);
    if (P > 0) xb.narrow(0, 0, P).copy_from(prefix_rows);
    ops::add(xb.narrow(0, P, N), emb.select(0, b).view({N, C}), patch_pos);
  }
  LayerActs a;  // reused buffers when nothing is saved
  auto buffers = [&](LayerActs& s) {
    s.mean1 = f32(A, {B * T}), s.rstd1 = f32(A, {B * T}), s.h1 = f32(A, {B * T, C});
    s.qkv = f32(A, {B * T, 3 * C}), s.att = f32(A, {B, T, H, D}), s.lse = f32(A, {B, H, T});
    s.x_mid = f32(A, {B * T, C}), s.mean2 = f32(A, {B * T}), s.rstd2 = f32(A, {B * T});
    s.h2 = f32(A, {B * T, C}), s.u = f32(A, {B * T, Mh}), s.g = f32(A, {B * T, Mh});
  };
  if (!saved) buffers(a);
  Tensor proj = f32(A, {B * T, C});
  Tensor xf = x.view({B * T, C});
  std::vector<Tensor> out(blocks.size());
  for (int l = 0; l <= last; ++l) {
    const Layer& L = layers_[l];
    LayerActs& s = saved ? saved->layers.emplace_back() : a;
    if (saved) buffers(s);
    s.x_in = xf;
    ops::layernorm_forward(s.h1, s.mean1, s.rstd1, xf, L.ln1_w, L.ln1_b, c.ln_eps);
    ops::linear_forward(s.qkv, s.h1, L.qkv_w, L.qkv_b);
    ops::attention_forward(s.att, s.lse, s.qkv.view({B, T, 3, H, D}), scale);
    ops::linear_forward(proj, s.att.view({B * T, C}), L.proj_w, L.proj_b);
    ops::add(s.x_mid, xf, proj);
    ops::layernorm_forward(s.h2, s.mean2, s.rstd2, s.x_mid, L.ln2_w, L.ln2_b, c.ln_eps);
    ops::linear_forward(s.u, s.h2, L.fc1_w, L.fc1_b);
    ops::gelu_forward(s.g, s.u, c.gelu);
    ops::linear_forward(proj, s.g, L.fc2_w, L.fc2_b);
    // The next stream: a fresh tensor when saving (this layer's x_in and x_mid stay intact).
    Tensor next = saved ? f32(A, {B * T, C}) : xf;
    ops::add(next, s.x_mid, proj);
    xf = next;
    for (size_t k = 0; k < blocks.size(); ++k) {
      if (blocks[k] != l) continue;
      out[k] = f32(A, {B, N, C});
      Tensor xv = xf.view({B, T, C});
      for (int64_t b = 0; b < B; ++b)
        out[k].select(0, b).copy_from(xv.select(0, b).narrow(0, P, N));
    }
  }
  return out;
}

void VitEncoder::backward_input(nn::Arena& A, const Saved& sv, const std::vector<Tensor>& dblocks,
                                const Tensor& dpixels) const {
  const VitEncoderConfig& c = cfg_;
  RAE_CHECK(!sv.layers.empty() && dblocks.size() == sv.blocks.size(),
            "backward_input: ", dblocks.size(), " gradients for ", sv.blocks.size(),
            " saved blocks (forward_blocks with `saved` first)");
  const int64_t B = sv.pixels.dim(0), C = c.hidden, N = c.tokens(), P = c.prefix_tokens();
  const int64_t T = P + N, H = c.heads, D = C / H, p = c.patch, g = c.grid(), Mh = c.mlp_hidden;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor dx = f32z(A, {B * T, C});  // d loss / d(residual stream)
  for (int l = static_cast<int>(sv.layers.size()) - 1; l >= 0; --l) {
    const Layer& L = layers_[l];
    const LayerActs& s = sv.layers[l];
    for (size_t k = 0; k < sv.blocks.size(); ++k) {
      if (sv.blocks[k] != l || !dblocks[k].defined()) continue;
      Tensor dv = dx.view({B, T, C});
      for (int64_t b = 0; b < B; ++b)
        ops::add_(dv.select(0, b).narrow(0, P, N), dblocks[k].select(0, b));
    }
    // This layer's gradient scratch is handed back after it (only dx carries on).
    const nn::Arena::Mark mark = A.mark();
    // MLP branch: out = x_mid + fc2(gelu(fc1(ln2(x_mid)))).
    Tensor d_g = f32z(A, {B * T, Mh}), d_u = f32z(A, {B * T, Mh}), d_h = f32z(A, {B * T, C});
    ops::linear_backward(d_g, Tensor(), Tensor(), dx, s.g, L.fc2_w);
    ops::gelu_backward(d_u, d_g, s.u, c.gelu);
    ops::linear_backward(d_h, Tensor(), Tensor(), d_u, s.h2, L.fc1_w);
    ops::layernorm_backward(dx, Tensor(), Tensor(), d_h, s.x_mid, L.ln2_w, s.mean2, s.rstd2);
    // Attention branch: x_mid = x_in + proj(attention(qkv(ln1(x_in)))).
    Tensor d_att = f32z(A, {B * T, C}), d_qkv = f32z(A, {B * T, 3 * C});
    ops::linear_backward(d_att, Tensor(), Tensor(), dx, s.att.view({B * T, C}), L.proj_w);
    ops::attention_backward(d_qkv.view({B, T, 3, H, D}), d_att.view({B, T, H, D}),
                            s.qkv.view({B, T, 3, H, D}), s.att, s.lse, scale);
    Tensor d_h1 = f32z(A, {B * T, C});
    ops::linear_backward(d_h1, Tensor(), Tensor(), d_qkv, s.h1, L.qkv_w);
    ops::layernorm_backward(dx, Tensor(), Tensor(), d_h1, s.x_in, L.ln1_w, s.mean1, s.rstd1);
    A.rewind(mark);
  }
  // The patch rows' gradient is the embedding's; the prefix rows end here (constants).
  Tensor demb = f32(A, {B, g, g, C});
  Tensor dv = dx.view({B, T, C});
  for (int64_t b = 0; b < B; ++b)
    demb.select(0, b).view({N, C}).copy_from(dv.select(0, b).narrow(0, P, N));
  ops::conv2d_backward(dpixels, Tensor(), Tensor(), demb, sv.pixels, patch_w.view({C, p, p, 3}),
                       ops::Conv2dParams{p, p, 0, 0, false});
}

}  // namespace rae::models
