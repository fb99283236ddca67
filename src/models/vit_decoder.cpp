#include "models/vit_decoder.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace rae::models {

std::vector<std::string> decoder_preset_names() {
  return {"ViT-micro", "ViT-tiny", "ViT-B", "ViT-L", "ViT-XL"};
}

VitDecoderConfig decoder_preset(const std::string& name) {
  VitDecoderConfig c;
  c.name = name;
  auto arch = [&](int64_t w, int64_t d, int64_t h, int64_t m) {
    c.width = w, c.depth = d, c.heads = h, c.mlp_hidden = m;
  };
  if (name == "ViT-B") {
    arch(768, 12, 12, 3072);
  } else if (name == "ViT-L") {
    arch(1024, 24, 16, 4096);
  } else if (name == "ViT-XL") {
    arch(1152, 28, 16, 4096);
  } else if (name == "ViT-tiny") {
    arch(64, 2, 4, 256);
    c.latent_channels = 64;
  } else if (name == "ViT-micro") {
    arch(16, 2, 2, 32);
    c.latent_channels = 8, c.grid = 4, c.patch = 4;
  } else {
    std::string all;
    for (auto& n : decoder_preset_names()) all += " " + n;
    RAE_THROW("unknown decoder preset '", name, "' (known:", all, ")");
  }
  return c;
}

std::string VitDecoderConfig::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"latent_channels", latent_channels},
                      {"width", width},
                      {"depth", depth},
                      {"heads", heads},
                      {"mlp_hidden", mlp_hidden},
                      {"patch", patch},
                      {"grid", grid},
                      {"channels", channels},
                      {"ln_eps", ln_eps},
                      {"pixel_mean", pixel_mean},
                      {"pixel_std", pixel_std}};
  return j.dump();
}

VitDecoderConfig VitDecoderConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    RAE_THROW("ViTDecoder config: invalid JSON: ", e.what());
  }
  VitDecoderConfig c;
  auto get = [&](const char* key, auto& v, bool required) {
    if (!j.contains(key)) {
      RAE_CHECK(!required, "ViTDecoder config: missing key '", key, "'");
      return;
    }
    try {
      v = j.at(key).get<std::decay_t<decltype(v)>>();
    } catch (const std::exception& e) {
      RAE_THROW("ViTDecoder config: key '", key, "': ", e.what());
    }
  };
  get("name", c.name, false);
  get("latent_channels", c.latent_channels, true), get("width", c.width, true);
  get("depth", c.depth, true), get("heads", c.heads, true), get("mlp_hidden", c.mlp_hidden, true);
  get("patch", c.patch, true), get("grid", c.grid, true);
  get("channels", c.channels, false), get("ln_eps", c.ln_eps, false);
  get("pixel_mean", c.pixel_mean, false), get("pixel_std", c.pixel_std, false);
  RAE_CHECK(c.width > 0 && c.depth > 0 && c.heads > 0 && c.width % c.heads == 0,
            "ViTDecoder config: width ", c.width, " / heads ", c.heads, " / depth ", c.depth,
            " are not a valid transformer");
  RAE_CHECK(c.channels == 3, "ViTDecoder config: only 3 output channels are supported, got ",
            c.channels);
  return c;
}

VitDecoderConfig infer_decoder_config(const std::map<std::string, Tensor>& t) {
  auto need = [&](const std::string& n) -> const Tensor& {
    auto f = t.find(n);
    RAE_CHECK(f != t.end(), "not a decoder state dict: no tensor '", n, "'");
    return f->second;
  };
  VitDecoderConfig c;
  c.name = "inferred";
  const Tensor& embed = need("decoder_embed.weight");
  c.width = embed.dim(0), c.latent_channels = embed.dim(1);
  c.depth = 0;
  while (t.count("decoder_layers." + std::to_string(c.depth) + ".layernorm_before.weight"))
    ++c.depth;
  RAE_CHECK(c.depth > 0, "not a decoder state dict: no decoder_layers.0.*");
  c.mlp_hidden = need("decoder_layers.0.intermediate.dense.weight").dim(0);
  const int64_t pd = need("decoder_pred.weight").dim(0);
  c.patch = std::lround(std::sqrt(static_cast<double>(pd / 3)));
  RAE_CHECK(c.patch * c.patch * 3 == pd, "decoder_pred.weight has ", pd,
            " outputs: not p*p*3 pixels");
  const int64_t npos = need("decoder_pos_embed").numel() / c.width - 1;
  c.grid = std::lround(std::sqrt(static_cast<double>(npos)));
  RAE_CHECK(c.grid * c.grid == npos, "decoder_pos_embed: ", npos, " positions are not a square");
  c.heads = c.width == 768                         ? 12
            : (c.width == 1024 || c.width == 1152) ? 16
                                                   : std::max<int64_t>(1, c.width / 64);
  return c;
}

VitDecoder::VitDecoder(const VitDecoderConfig& cfg, bool allocate) : cfg_(cfg) {
  const int64_t W = cfg.width, M = cfg.mlp_hidden;
  RAE_CHECK(W % cfg.heads == 0, "decoder: width ", W, " not divisible by heads ", cfg.heads);
  ps_.begin_group("embed");
  embed_.declare(ps_, "decoder_embed", cfg.latent_channels, W);
  cls_ = ps_.add("trainable_cls_token", {1, 1, W});
  layers_.resize(cfg.depth);
  for (int64_t i = 0; i < cfg.depth; ++i) {
    const std::string p = "decoder_layers." + std::to_string(i) + ".";
    Layer& l = layers_[i];
    l.group = ps_.begin_group("decoder_layers." + std::to_string(i));
    block_groups_.push_back(l.group);
    // Weights then biases of query, key, value: adjacent in the flat buffer = fused qkv.
    const std::string a = p + "attention.attention.";
    // Packed: no alignment holes between them, whatever W (kParamAlign).
    l.q_w = ps_.add(a + "query.weight", {W, W});
    ps_.add(a + "key.weight", {W, W}, /*packed=*/true);
    ps_.add(a + "value.weight", {W, W}, /*packed=*/true);
    l.q_b = ps_.add(a + "query.bias", {W});
    ps_.add(a + "key.bias", {W}, /*packed=*/true);
    ps_.add(a + "value.bias", {W}, /*packed=*/true);
    l.proj.declare(ps_, p + "attention.output.dense", W, W);
    l.fc1.declare(ps_, p + "intermediate.dense", W, M);
    l.fc2.declare(ps_, p + "output.dense", M, W);
    l.ln1_w = ps_.add(p + "layernorm_before.weight", {W});
    l.ln1_b = ps_.add(p + "layernorm_before.bias", {W});
    l.ln2_w = ps_.add(p + "layernorm_after.weight", {W});
    l.ln2_b = ps_.add(p + "layernorm_after.bias", {W});
  }
  ps_.begin_group("final");
  norm_w_ = ps_.add("decoder_norm.weight", {W});
  norm_b_ = ps_.add("decoder_norm.bias", {W});
  pred_.declare(ps_, "decoder_pred", W, cfg.patch_dim());
  pos_ = ps_.add_buffer("decoder_pos_embed", {1, cfg.tokens() + 1, W});
  if (!allocate) return;
  ps_.allocate();
  // Row 0 (the CLS position) stays zero, as get_2d_sincos_pos_embed(add_cls_token=True).
  ops::sincos_pos_embed_2d(ps_.buffer(pos_).view({cfg.tokens() + 1, W}).narrow(0, 1, cfg.tokens()),
                           cfg.grid, cfg.grid);
}

nlohmann::json VitDecoder::config() const {
  return nlohmann::json::parse(cfg_.to_json());
}

std::string VitDecoder::summary() const {
  return cfg_.name + " (" + type() + "): " + nn::format_count(ps_.num_params()) + " parameters, " +
         std::to_string(cfg_.width) + "x" + std::to_string(cfg_.depth) + ", tokens " +
         std::to_string(cfg_.tokens()) + "x" + std::to_string(cfg_.latent_channels) + " -> " +
         std::to_string(cfg_.image_size()) + " px";
}

void VitDecoder::init(uint64_t seed) {
  const auto& infos = ps_.params();
  for (size_t id = 0; id < infos.size(); ++id) {
    const nn::ParamInfo& info = infos[id];
    Tensor v = ps_.value(static_cast<int>(id));
    const std::string& n = info.name;
    const bool is_bias = n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0;
    if (n.find("layernorm") != std::string::npos || n.rfind("decoder_norm", 0) == 0) {
      v.fill_(is_bias ? 0.0 : 1.0);
    } else if (n == "trainable_cls_token") {
      v.zero_();
    } else {
      // Linear: fan_in is the weight's second dim; a bias follows its weight's fan_in.
      const Shape& ws =
          is_bias ? infos[ps_.find(n.substr(0, n.size() - 5) + ".weight")].shape : info.shape;
      const double bound = 1.0 / std::sqrt(static_cast<double>(ws[1]));
      rng::Key k{seed, rng::Purpose::Init, 0, static_cast<uint64_t>(id)};
      float* p = v.data<float>();
      // Element i is a pure function of (seed, id, i): parallel blocks give the same values.
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, v.numel(), 1 << 16),
                        [&](const tbb::blocked_range<int64_t>& r) {
                          for (int64_t i = r.begin(); i < r.end(); ++i)
                            p[i] = static_cast<float>(
                                (2.0 * rng::uniform_at(k, static_cast<uint64_t>(i)) - 1.0) * bound);
                        });
    }
  }
}

void VitDecoder::to(Device device) {
  ps_.to_device(device);
}

Tensor VitDecoder::qkv_weight(const Layer& l, bool grad) const {
  const nn::ParamGroup& g = ps_.groups()[l.group];
  const int64_t W = cfg_.width, off = ps_.params()[l.q_w].offset;
  const Tensor& flat = grad ? g.grad : g.data;
  if (!flat.defined()) return Tensor();
  return flat.narrow(0, off, 3 * W * W).view({3 * W, W});
}

Tensor VitDecoder::qkv_bias(const Layer& l, bool grad) const {
  const nn::ParamGroup& g = ps_.groups()[l.group];
  const int64_t W = cfg_.width, off = ps_.params()[l.q_b].offset;
  const Tensor& flat = grad ? g.grad : g.data;
  if (!flat.defined()) return Tensor();
  return flat.narrow(0, off, 3 * W);
}

void VitDecoder::layer_forward(int i, nn::Arena& A, LayerSaved& s, const Tensor& x_out,
                               const Tensor& x_in) {
  const Layer& l = layers_[i];
  const int64_t B = x_in.dim(0), T = x_in.dim(1), W = cfg_.width, N = B * T;
  const int64_t H = cfg_.heads, D = W / H, M = cfg_.mlp_hidden;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  s.x_in = x_in;
  Tensor x = x_in.view({N, W});
  s.mean1 = A.empty({N}, DType::F32), s.rstd1 = A.empty({N}, DType::F32);
  s.h1 = A.empty({N, W});
  ops::layernorm_forward(s.h1, s.mean1, s.rstd1, x, ps_.value(l.ln1_w), ps_.value(l.ln1_b),
                         cfg_.ln_eps);
  s.qkv = A.empty({N, 3 * W});
  ops::linear_forward(s.qkv, s.h1, qkv_weight(l, false), qkv_bias(l, false));
  s.att = A.empty({B, T, H, D});
  s.lse = A.empty({B, H, T}, DType::F32);
  ops::attention_forward(s.att, s.lse, s.qkv.view({B, T, 3, H, D}), scale);
  s.x_mid = A.empty({B, T, W});
  l.proj.forward(ps_, s.x_mid.view({N, W}), s.att.view({N, W}));
  ops::add_(s.x_mid, x_in);  // attention_output + hidden_states
  s.mean2 = A.empty({N}, DType::F32), s.rstd2 = A.empty({N}, DType::F32);
  s.h2 = A.empty({N, W});
  ops::layernorm_forward(s.h2, s.mean2, s.rstd2, s.x_mid.view({N, W}), ps_.value(l.ln2_w),
                         ps_.value(l.ln2_b), cfg_.ln_eps);
  s.u = A.empty({N, M});
  l.fc1.forward(ps_, s.u, s.h2);
  s.g = A.empty({N, M});
  ops::gelu_forward(s.g, s.u, ops::GeluKind::Exact);
  l.fc2.forward(ps_, x_out.view({N, W}), s.g);
  ops::add_(x_out, s.x_mid);
}

void VitDecoder::layer_backward(int i, nn::Arena& A, const LayerSaved& s, const Tensor& dx) {
  const Layer& l = layers_[i];
  const int64_t B = s.x_in.dim(0), T = s.x_in.dim(1), W = cfg_.width, N = B * T;
  const int64_t H = cfg_.heads, D = W / H, M = cfg_.mlp_hidden;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor dxf = dx.view({N, W});  // dL/dx_out on entry; the residuals pass it through
  // MLP branch: x_out = x_mid + fc2(gelu(fc1(LN2(x_mid)))).
  Tensor dg = A.zeros({N, M});
  l.fc2.backward(ps_, dg, dxf, s.g);
  Tensor du = A.zeros({N, M});
  ops::gelu_backward(du, dg, s.u, ops::GeluKind::Exact);
  Tensor dh2 = A.zeros({N, W});
  l.fc1.backward(ps_, dh2, du, s.h2);
  ops::layernorm_backward(dxf, ps_.grad(l.ln2_w), ps_.grad(l.ln2_b), dh2, s.x_mid.view({N, W}),
                          ps_.value(l.ln2_w), s.mean2, s.rstd2);
  // Attention branch: x_mid = x_in + proj(attention(qkv(LN1(x_in)))).
  Tensor datt = A.zeros({B, T, H, D});
  l.proj.backward(ps_, datt.view({N, W}), dxf, s.att.view({N, W}));
  Tensor dqkv = A.zeros({N, 3 * W});
  ops::attention_backward(dqkv.view({B, T, 3, H, D}), datt, s.qkv.view({B, T, 3, H, D}), s.att,
                          s.lse, scale);
  Tensor dh1 = A.zeros({N, W});
  ops::linear_backward(dh1, qkv_weight(l, true), qkv_bias(l, true), dqkv, s.h1,
                       qkv_weight(l, false));
  ops::layernorm_backward(dxf, ps_.grad(l.ln1_w), ps_.grad(l.ln1_b), dh1, s.x_in.view({N, W}),
                          ps_.value(l.ln1_w), s.mean1, s.rstd1);
}

void VitDecoder::forward(nn::Arena& A, const Tensor& out, const Tensor& z) {
  backward_ready_ = false;
  forward_any(A, out, z, /*save=*/true);
  backward_ready_ = true;
}

void VitDecoder::infer(nn::Arena& A, const Tensor& out, const Tensor& z) {
  backward_ready_ = false;
  forward_any(A, out, z, /*save=*/false);
}

void VitDecoder::forward_any(nn::Arena& A, const Tensor& out, const Tensor& z, bool save) {
  const int64_t B = z.dim(0), T = cfg_.tokens(), T1 = T + 1, C = cfg_.latent_channels;
  const int64_t W = cfg_.width, S = cfg_.image_size();
  RAE_CHECK(z.ndim() == 3 && z.dim(1) == T && z.dim(2) == C, "decoder ", cfg_.name, ": z is ",
            z.shape().str(), ", expected (B, ", T, ", ", C, ")");
  RAE_CHECK(out.ndim() == 4 && out.dim(0) == B && out.dim(1) == cfg_.channels && out.dim(2) == S &&
                out.dim(3) == S,
            "decoder ", cfg_.name, ": out is ", out.shape().str(), ", expected (", B, ", ",
            cfg_.channels, ", ", S, ", ", S, ")");
  Saved& s = sv_;
  s.B = B, s.z = z;
  // x0 = [cls | decoder_embed(z)] + decoder_pos_embed: the embedded tokens go to rows 1..T, the
  // CLS rows start at zero, and a (T+1, W) table holding pos with cls added to its row 0 is
  // added to every sample.
  Tensor e = A.empty({B, T, W});
  embed_.forward(ps_, e.view({B * T, W}), z.view({B * T, C}));
  Tensor xin = A.empty({B, T1, W});
  xin.narrow(1, 1, T).copy_from(e);
  xin.narrow(1, 0, 1).copy_from(A.zeros({B, 1, W}));
  Tensor table = A.empty({T1, W}, DType::F32);  // F32 like the parameters
  table.copy_from(ps_.buffer(pos_).view({T1, W}));
  Tensor cls = ps_.value(cls_);  // BF16 when the sharding core computes in bf16
  ops::add_(table.narrow(0, 0, 1),
            (cls.dtype() == DType::F32 ? cls : cls.cast(DType::F32)).view({1, W}));
  s.x0 = A.empty({B, T1, W});
  ops::add_rowwise(s.x0.view({B * T1, W}), xin.view({B * T1, W}), table);

  const int64_t L = cfg_.depth;
  s.xs.assign(L + 1, Tensor());
  s.layer.resize(L);
  s.xs[0] = s.x0;
  // Inference: two buffers for the layer outputs in turn, each layer's scratch rewound after it.
  Tensor turn[2];
  if (!save) turn[0] = A.empty({B, T1, W}), turn[1] = A.empty({B, T1, W});
  for (int64_t i = 0; i < L; ++i) {
    s.xs[i + 1] = save ? A.empty({B, T1, W}) : turn[i % 2];
    forward_block(static_cast<int>(i), [&] {
      if (save) return layer_forward(static_cast<int>(i), A, s.layer[i], s.xs[i + 1], s.xs[i]);
      const nn::Arena::Mark m = A.mark();
      LayerSaved scratch;
      layer_forward(static_cast<int>(i), A, scratch, s.xs[i + 1], s.xs[i]);
      A.rewind(m);
    });
  }
  const int64_t N = B * T1, P = cfg_.patch_dim();
  s.mean_f = A.empty({N}, DType::F32), s.rstd_f = A.empty({N}, DType::F32);
  s.hf = A.empty({N, W});
  ops::layernorm_forward(s.hf, s.mean_f, s.rstd_f, s.xs[L].view({N, W}), ps_.value(norm_w_),
                         ps_.value(norm_b_), cfg_.ln_eps);
  Tensor logits = A.empty({B, T1, P});
  pred_.forward(ps_, logits.view({N, P}), s.hf);
  Tensor tok = A.empty({B, T, P});  // the CLS row dropped
  tok.copy_from(logits.narrow(1, 1, T));
  ops::unpatchify(out, tok, cfg_.patch);
}

void VitDecoder::pred_weight_grad(nn::Arena& A, const Tensor& dout, const Tensor& dw) const {
  RAE_CHECK(backward_ready_,
            "ViTDecoder pred_weight_grad: the last forward was not a training forward");
  const Saved& s = sv_;
  const int64_t B = s.B, T = cfg_.tokens(), T1 = T + 1, N = B * T1, P = cfg_.patch_dim();
  RAE_CHECK(dw.shape() == Shape({P, cfg_.width}), "ViTDecoder pred_weight_grad: dw ", dw.str(),
            " is not (", P, ", ", cfg_.width, ")");
  Tensor dtok = A.empty({B, T, P});
  ops::patchify(dtok, dout, cfg_.patch);
  Tensor dlogits = A.zeros({B, T1, P});
  dlogits.narrow(1, 1, T).copy_from(dtok);
  ops::linear_backward(Tensor(), dw, Tensor(), dlogits.view({N, P}), s.hf, pred_.weight(ps_));
}

void VitDecoder::backward(nn::Arena& A, const Tensor& dout, const Tensor& dz) {
  RAE_CHECK(backward_ready_, "ViTDecoder backward: the last forward was not a training forward");
  Saved& s = sv_;
  const int64_t B = s.B, T = cfg_.tokens(), T1 = T + 1, C = cfg_.latent_channels;
  const int64_t W = cfg_.width, N = B * T1, P = cfg_.patch_dim(), L = cfg_.depth;
  Tensor dtok = A.empty({B, T, P});
  ops::patchify(dtok, dout, cfg_.patch);  // unpatchify is a permutation: its adjoint
  Tensor dlogits = A.zeros({B, T1, P});
  dlogits.narrow(1, 1, T).copy_from(dtok);
  Tensor dhf = A.zeros({N, W});
  pred_.backward(ps_, dhf, dlogits.view({N, P}), s.hf);
  Tensor dx = A.zeros({B, T1, W});
  ops::layernorm_backward(dx.view({N, W}), ps_.grad(norm_w_), ps_.grad(norm_b_), dhf,
                          s.xs[L].view({N, W}), ps_.value(norm_w_), s.mean_f, s.rstd_f);
  for (int64_t i = L - 1; i >= 0; --i)
    backward_block(static_cast<int>(i), [&] {
      // The layer's gradient scratch is handed back after it: only dx carries on.
      const nn::Arena::Mark m = A.mark();
      layer_backward(static_cast<int>(i), A, s.layer[i], dx);
      A.rewind(m);
    });
  // x0 = xin + table: the table's row 0 holds cls (pos is fixed).
  const Tensor& dcls = ps_.grad(cls_);
  if (dcls.defined()) {
    Tensor dtable = A.zeros({T1, W}, DType::F32);
    ops::add_rowwise_backward(dtable, dx.view({N, W}));
    ops::add_(dcls.view({1, W}), dtable.narrow(0, 0, 1));
  }
  Tensor de = A.empty({B, T, W});
  de.copy_from(dx.narrow(1, 1, T));
  embed_.backward(ps_, dz.defined() ? dz.view({B * T, C}) : Tensor(), de.view({B * T, W}),
                  s.z.view({B * T, C}));
}

}  // namespace rae::models
