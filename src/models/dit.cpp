#include "models/dit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/error.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/norm.h"

namespace rae::models {

namespace {
constexpr double kNormEps = 1e-6;
constexpr double kRopeTheta = 10000.0;
}  // namespace

std::vector<std::string> dit_preset_names() {
  return {"DiTDH-micro", "DiTDH-tiny", "DiTDH-tiny-deep", "DiTDH-S", "DiTDH-B", "DiTDH-L",
          "DiTDH-XL",    "DiT-micro",  "DiT-S",           "DiT-B",   "DiT-L",   "DiT-XL"};
}

DiTConfig dit_preset(const std::string& name) {
  DiTConfig c;
  c.name = name;
  auto body = [&](int64_t w, int64_t d, int64_t h) {
    c.body_width = w, c.body_depth = d, c.body_heads = h;
  };
  if (name.rfind("DiT-", 0) == 0) c.head_depth = 0, c.head_width = 0, c.head_heads = 0;
  if (name == "DiTDH-S" || name == "DiT-S")
    body(384, 12, 6);
  else if (name == "DiT-B")
    body(768, 12, 12);
  else if (name == "DiT-L")
    body(1024, 24, 16);
  else if (name == "DiT-XL")
    body(1152, 28, 16);
  else if (name == "DiT-micro")
    body(16, 2, 2), c.fourier_size = 8;
  else if (name == "DiTDH-B")
    body(768, 12, 12);
  else if (name == "DiTDH-L")
    body(1024, 24, 16);
  else if (name == "DiTDH-XL")
    body(1152, 28, 16);
  else if (name == "DiTDH-tiny") {
    // CPU smoke training: body 64 x 2 (2 heads of 32), head 128 x 1 (2 heads of 64).
    body(64, 2, 2);
    c.head_width = 128, c.head_depth = 1, c.head_heads = 2;
  } else if (name == "DiTDH-tiny-deep") {
    // CPU tests of per-block sharding (ZeRO-3): 6 + 2 equal blocks of width 64 (2 heads).
    body(64, 6, 2);
    c.head_width = 64, c.head_depth = 2, c.head_heads = 2;
  } else if (name == "DiTDH-micro") {
    // Golden tests: every feature on at the smallest size (head dims divisible by 4 for RoPE).
    body(16, 2, 2);
    c.head_width = 24, c.head_depth = 1, c.head_heads = 2;
    c.fourier_size = 8;
  } else {
    std::string all;
    for (auto& n : dit_preset_names()) all += " " + n;
    RAE_THROW("unknown model preset '", name, "' (known:", all, ")");
  }
  return c;
}

std::string DiTConfig::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"in_channels", in_channels},
                      {"grid", grid},
                      {"num_classes", num_classes},
                      {"body_width", body_width},
                      {"body_depth", body_depth},
                      {"body_heads", body_heads},
                      {"head_width", head_width},
                      {"head_depth", head_depth},
                      {"head_heads", head_heads},
                      {"mlp_ratio", mlp_ratio},
                      {"class_dropout", class_dropout},
                      {"fourier_size", fourier_size}};
  return j.dump();
}

namespace {

// The keys of a DiT config, in to_json() order.
constexpr const char* kConfigKeys[] = {"name",        "in_channels", "grid",       "num_classes",
                                       "body_width",  "body_depth",  "body_heads", "head_width",
                                       "head_depth",  "head_heads",  "mlp_ratio",  "class_dropout",
                                       "fourier_size"};

// Bounds that keep every product of the sizes far from int64 overflow and refuse configs no
// machine could hold before anything is allocated (the largest release model, DiTDH-XL, has
// 0.84e9 parameters).
constexpr int64_t kMaxWidth = 1 << 16, kMaxDepth = 1024, kMaxGrid = 1024, kMaxChannels = 1 << 16;
constexpr int64_t kMaxClasses = 1 << 24, kMaxFourier = 1 << 16;
constexpr int64_t kMaxParams = int64_t{1} << 36;  // 68.7e9 parameters, 275 GB as F32

}  // namespace

void DiTConfig::validate(const std::string& where) const {
  auto in_range = [&](const char* key, int64_t v, int64_t lo, int64_t hi) {
    RAE_CHECK(v >= lo && v <= hi, where, ": key '", key, "' is ", v, ", must be in [", lo, ", ", hi,
              "]");
  };
  // A width split into heads: divisible, and (for the 2-D RoPE and sin-cos tables) heads of a
  // multiple of 4 channels; the SwiGLU hidden width must be >= 1.
  auto width_heads = [&](const char* wkey, int64_t w, const char* hkey, int64_t h) {
    in_range(wkey, w, 4, kMaxWidth);
    in_range(hkey, h, 1, w);
    RAE_CHECK(w % h == 0, where, ": key '", wkey, "' (", w, ") is not divisible by '", hkey, "' (",
              h, ")");
    RAE_CHECK((w / h) % 4 == 0, where, ": head dim ", wkey, " / ", hkey, " = ", w / h,
              " must be a multiple of 4 (2-D rotary embedding)");
    RAE_CHECK(nn::swiglu_hidden(w, mlp_ratio) >= 1, where, ": key 'mlp_ratio' (", mlp_ratio,
              ") leaves no MLP hidden units at width ", w);
  };
  in_range("in_channels", in_channels, 1, kMaxChannels);
  in_range("grid", grid, 1, kMaxGrid);
  in_range("num_classes", num_classes, 1, kMaxClasses);
  in_range("fourier_size", fourier_size, 1, kMaxFourier);
  RAE_CHECK(std::isfinite(mlp_ratio) && mlp_ratio > 0 && mlp_ratio <= 64, where,
            ": key 'mlp_ratio' is ", mlp_ratio, ", must be in (0, 64]");
  RAE_CHECK(std::isfinite(class_dropout) && class_dropout >= 0 && class_dropout < 1, where,
            ": key 'class_dropout' is ", class_dropout, ", must be in [0, 1)");
  in_range("body_depth", body_depth, 1, kMaxDepth);
  width_heads("body_width", body_width, "body_heads", body_heads);
  RAE_CHECK(body_width % 4 == 0, where, ": key 'body_width' (", body_width,
            ") must be a multiple of 4 (2-D sin-cos position table)");
  in_range("head_depth", head_depth, 0, kMaxDepth);
  if (head_depth > 0) {
    width_heads("head_width", head_width, "head_heads", head_heads);
  } else {  // plain DiT: no head (the presets record 0)
    in_range("head_width", head_width, 0, kMaxWidth);
    in_range("head_heads", head_heads, 0, kMaxWidth);
  }
}

DiTConfig DiTConfig::from_json(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    RAE_THROW(where, ": not JSON: ", e.what());
  }
  RAE_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.dump());
  for (auto it = j.begin(); it != j.end(); ++it)
    RAE_CHECK(std::find_if(std::begin(kConfigKeys), std::end(kConfigKeys),
                           [&](const char* k) { return it.key() == k; }) != std::end(kConfigKeys),
              where, ": unknown key '", it.key(), "'");
  DiTConfig c;
  auto get = [&](const char* key, auto& v) {
    using T = std::decay_t<decltype(v)>;
    RAE_CHECK(j.contains(key), where, ": missing key '", key, "'");
    const nlohmann::json& x = j.at(key);
    bool ok = false;
    if constexpr (std::is_same_v<T, std::string>)
      ok = x.is_string();
    else if constexpr (std::is_integral_v<T>)
      ok = x.is_number_integer();
    else
      ok = x.is_number();
    RAE_CHECK(ok, where, ": key '", key, "' must be ",
              std::is_same_v<T, std::string> ? "a string"
              : std::is_integral_v<T>        ? "an integer"
                                             : "a number",
              ", got ", x.dump());
    v = x.get<T>();
  };
  get("name", c.name), get("in_channels", c.in_channels), get("grid", c.grid);
  get("num_classes", c.num_classes), get("body_width", c.body_width);
  get("body_depth", c.body_depth), get("body_heads", c.body_heads);
  get("head_width", c.head_width), get("head_depth", c.head_depth);
  get("head_heads", c.head_heads), get("mlp_ratio", c.mlp_ratio);
  get("class_dropout", c.class_dropout), get("fourier_size", c.fourier_size);
  c.validate(where);
  return c;
}

DiTConfig infer_dit_config(const std::map<std::string, Tensor>& t) {
  auto need = [&](const std::string& n) -> const Tensor& {
    auto f = t.find(n);
    RAE_CHECK(f != t.end(), "cannot infer the model: no tensor '", n, "'");
    return f->second;
  };
  DiTConfig c;
  c.name = "inferred";
  int64_t depth = 0;
  while (t.count("blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
  const Tensor& x = need("x_embedder.proj.weight");
  if (!t.count("s_embedder.proj.weight")) {  // plain LightningDiT
    c.body_width = x.dim(0), c.in_channels = x.dim(1), c.body_depth = depth;
    c.head_width = 0, c.head_depth = 0;
  } else {
    const Tensor& s = need("s_embedder.proj.weight");
    c.body_width = s.dim(0), c.in_channels = s.dim(1), c.head_width = x.dim(0);
    RAE_CHECK(c.body_width != c.head_width,
              "cannot infer the DiT^DH config: body and head are both ", c.body_width,
              " wide, so the tensor names do not tell the head depth; convert the checkpoint "
              "with tools/convert_rae_checkpoint.py (--head-depth N) to record the config");
    int64_t body = 0;
    while (body < depth &&
           t.at("blocks." + std::to_string(body) + ".norm1.weight").dim(0) == c.body_width)
      ++body;
    c.body_depth = body, c.head_depth = depth - body;
  }
  c.grid = static_cast<int64_t>(std::lround(std::sqrt(need("pos_embed").dim(1))));
  const Tensor& table = need("y_embedder.embedding_table.weight");
  c.num_classes = table.dim(0) - 1;
  c.fourier_size = need("t_embedder.W").dim(0);
  auto heads = [](int64_t w) {
    return w == 1152 ? 16 : w == 384 ? 6 : std::max<int64_t>(1, w / 64);
  };
  c.body_heads = heads(c.body_width), c.head_heads = c.head_depth ? heads(c.head_width) : 0;
  return c;
}

const char* dit_type(const DiTConfig& c) {
  return c.head_depth > 0 ? "DiTDH" : "DiT";
}

nlohmann::json DiTDH::config() const {
  return nlohmann::json::parse(cfg_.to_json());
}

std::string DiTDH::summary() const {
  std::string s = cfg_.name + " (" + type() + "): " + nn::format_count(ps_.num_params()) +
                  " parameters, body " + std::to_string(cfg_.body_width) + "x" +
                  std::to_string(cfg_.body_depth);
  if (!plain_)
    s += ", head " + std::to_string(cfg_.head_width) + "x" + std::to_string(cfg_.head_depth);
  return s + ", tokens " + std::to_string(cfg_.tokens()) + "x" + std::to_string(cfg_.in_channels);
}

DiTDH::DiTDH(const DiTConfig& cfg, bool allocate) : cfg_(cfg) {
  const int64_t C = cfg.in_channels, Wb = cfg.body_width, Wh = cfg.head_width;
  plain_ = cfg.head_depth == 0;
  const int64_t Wf = plain_ ? Wb : Wh;  // width of the final layer
  cfg.validate(std::string(dit_type(cfg)) + " config '" + cfg.name + "'");
  ps_.begin_group("embed");
  if (plain_) {
    x_embedder_.declare(ps_, "x_embedder.proj", C, Wb, true, {Wb, C, 1, 1});
  } else {
    x_embedder_.declare(ps_, "x_embedder.proj", C, Wh, true, {Wh, C, 1, 1});
    s_embedder_.declare(ps_, "s_embedder.proj", C, Wb, true, {Wb, C, 1, 1});
    has_projector_ = Wb != Wh;
    if (has_projector_) s_projector_.declare(ps_, "s_projector", Wb, Wh);
  }
  t_mlp0_.declare(ps_, "t_embedder.mlp.0", 2 * cfg.fourier_size, Wb);
  t_mlp2_.declare(ps_, "t_embedder.mlp.2", Wb, Wb);
  label_table_ = ps_.add("y_embedder.embedding_table.weight",
                         {cfg.num_classes + (cfg.class_dropout > 0 ? 1 : 0), Wb});
  const int64_t depth = cfg.body_depth + cfg.head_depth;
  blocks_.resize(depth);
  for (int64_t i = 0; i < depth; ++i) {
    bool body = i < cfg.body_depth;
    block_groups_.push_back(ps_.begin_group("blocks." + std::to_string(i)));
    blocks_[i].declare(ps_, "blocks." + std::to_string(i), body ? Wb : Wh,
                       body ? cfg.body_heads : cfg.head_heads, cfg.mlp_ratio);
  }
  ps_.begin_group("final_layer");
  final_norm_ = ps_.add("final_layer.norm_final.weight", {Wf});
  final_linear_.declare(ps_, "final_layer.linear", Wf, C);
  final_ada_.declare(ps_, "final_layer.adaLN_modulation.1", Wf, 2 * Wf);
  fourier_W_ = ps_.add_buffer("t_embedder.W", {cfg.fourier_size});
  pos_embed_ = ps_.add_buffer("pos_embed", {1, cfg.tokens(), Wb});
  // The parameters plus the position and rotary tables (tokens x width each, at most three).
  const int64_t elements = ps_.num_params() + 3 * cfg.tokens() * std::max(Wb, Wh);
  RAE_CHECK(elements <= kMaxParams, dit_type(cfg), " config '", cfg.name, "': ", elements,
            " elements of parameters and tables exceed the limit of ", kMaxParams);
  if (!allocate) return;
  ps_.allocate();

  auto rope = [&](Tensor& cos, Tensor& sin, int64_t head_dim) {
    cos = Tensor::empty({cfg.tokens(), head_dim});
    sin = Tensor::empty({cfg.tokens(), head_dim});
    ops::rope2d_tables(cos, sin, cfg.grid, cfg.grid, head_dim, kRopeTheta);
  };
  rope(body_cos_, body_sin_, Wb / cfg.body_heads);
  if (!plain_) rope(head_cos_, head_sin_, Wh / cfg.head_heads);
  ops::sincos_pos_embed_2d(ps_.buffer(pos_embed_).view({cfg.tokens(), Wb}), cfg.grid, cfg.grid);
}

void DiTDH::init(uint64_t seed) {
  const auto& infos = ps_.params();
  auto fill = [&](int id, auto gen) {
    Tensor v = ps_.value(id);
    float* p = v.data<float>();
    rng::Key k{seed, rng::Purpose::Init, 0, static_cast<uint64_t>(id)};
    for (int64_t i = 0; i < v.numel(); ++i) p[i] = gen(k, static_cast<uint64_t>(i));
  };
  auto uniform = [&](int id, double bound) {
    fill(id, [bound](const rng::Key& k, uint64_t i) {
      return static_cast<float>((2.0 * rng::uniform_at(k, i) - 1.0) * bound);
    });
  };
  auto normal = [&](int id, double std) {
    fill(id, [std](const rng::Key& k, uint64_t i) {
      return static_cast<float>(std * rng::normal_at(k, i));
    });
  };
  auto zero = [&](int id) { Tensor(ps_.value(id)).zero_(); };
  // torch.nn.Linear default: kaiming_uniform(a=sqrt(5)) => U(+-1/sqrt(fan_in)), bias likewise.
  for (size_t id = 0; id < infos.size(); ++id) {
    const auto& name = infos[id].name;
    bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (name.find("norm") != std::string::npos) {
      Tensor(ps_.value(static_cast<int>(id))).fill_(1.0);  // RMSNorm weights
    } else if (plain_ && is_weight) {  // LightningDiT: xavier-uniform linears, zero biases
      const Shape& sh = infos[id].shape;
      const int64_t fan_out = sh[0], fan_in = sh.numel() / sh[0];
      uniform(static_cast<int>(id), std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
    } else if (plain_ && is_bias) {
      zero(static_cast<int>(id));
    } else if (is_weight || is_bias) {
      int64_t fan_in = is_weight ? infos[id].shape.numel() / infos[id].shape[0]
                                 : ps_.value(static_cast<int>(id) - 1).numel() / infos[id].shape[0];
      uniform(static_cast<int>(id), 1.0 / std::sqrt(static_cast<double>(fan_in)));
    }
  }
  // Patch embedders (conv 1x1) as xavier-uniform linears, bias 0.
  for (const nn::Linear* l : {&x_embedder_, &s_embedder_}) {
    if (l->w < 0) continue;
    uniform(l->w, std::sqrt(6.0 / static_cast<double>(l->in + l->out)));
    zero(l->b);
  }
  normal(label_table_, 0.02);
  for (auto& b : blocks_) zero(b.ada.w), zero(b.ada.b);
  normal(t_mlp0_.w, 0.02);
  normal(t_mlp2_.w, 0.02);
  zero(final_ada_.w), zero(final_ada_.b), zero(final_linear_.w), zero(final_linear_.b);
  // Fourier W ~ N(0, 1) (a buffer: index past the parameters).
  Tensor W = ps_.buffer(fourier_W_);
  rng::Key kw{seed, rng::Purpose::Init, 0, 1000000};
  for (int64_t i = 0; i < W.numel(); ++i) W.data<float>()[i] = rng::normal_at(kw, i);
}

void DiTDH::to(Device device) {
  ps_.to_device(device);
  for (Tensor* t : {&body_cos_, &body_sin_, &head_cos_, &head_sin_})
    if (t->defined()) *t = t->to(device);
}

void DiTDH::block_forward(int64_t i, nn::Arena& A, nn::DiTBlock::Saved& s, const Tensor& x_out,
                          const Tensor& x_in, const Tensor& cond, const Tensor& cos,
                          const Tensor& sin) {
  forward_block(static_cast<int>(i), [&] {
    if (saving_) return blocks_[i].forward(ps_, A, s, x_out, x_in, cond, cos, sin);
    const nn::Arena::Mark m = A.mark();  // the block's scratch is handed back after it
    nn::DiTBlock::Saved scratch;
    blocks_[i].forward(ps_, A, scratch, x_out, x_in, cond, cos, sin);
    A.rewind(m);
  });
}

DiTDH::Chain DiTDH::chain(nn::Arena& A, const Shape& shape) const {
  Chain c;
  if (!saving_) c.buf[0] = A.empty(shape), c.buf[1] = A.empty(shape);
  return c;
}

Tensor DiTDH::chain_next(nn::Arena& A, Chain& c, const Shape& shape) const {
  if (saving_) return A.empty(shape);
  Tensor t = c.buf[c.next];
  c.next ^= 1;
  return t;
}

void DiTDH::forward(nn::Arena& A, const Tensor& out, const Tensor& x, const Tensor& t,
                    const Tensor& y) {
  saving_ = true;
  backward_ready_ = false;
  forward_any(A, out, x, t, y);
  backward_ready_ = true;
}

void DiTDH::infer(nn::Arena& A, const Tensor& out, const Tensor& x, const Tensor& t,
                  const Tensor& y) {
  saving_ = false;
  backward_ready_ = false;
  try {
    forward_any(A, out, x, t, y);
  } catch (...) {
    saving_ = true;
    throw;
  }
  saving_ = true;
}

void DiTDH::block_backward(int64_t i, nn::Arena& A, const nn::DiTBlock::Saved& s, const Tensor& dx,
                           const Tensor& dcond, const Tensor& cos, const Tensor& sin) {
  backward_block(static_cast<int>(i), [&] { blocks_[i].backward(ps_, A, s, dx, dcond, cos, sin); });
}

void DiTDH::forward_any(nn::Arena& A, const Tensor& out, const Tensor& x, const Tensor& t,
                        const Tensor& y) {
  if (plain_) return forward_plain(A, out, x, t, y);
  const int64_t B = x.dim(0), T = cfg_.tokens(), C = cfg_.in_channels, N = B * T;
  const int64_t Wb = cfg_.body_width, Wh = cfg_.head_width;
  RAE_CHECK(x.ndim() == 3 && x.dim(1) == T && x.dim(2) == C, "DiTDH forward: x is ",
            x.shape().str(), ", expected (B, ", T, ", ", C, ")");
  Saved& s = sv_;
  s.B = B, s.x = x, s.t = t, s.y = y;
  // Conditioning: c = silu(t_emb + y_emb).
  s.cpre = A.empty({B, Wb});
  condition_forward(A, s.cpre, t, y);
  s.c = A.empty({B, Wb});
  ops::silu_forward(s.c, s.cpre);

  // Body on s = s_embedder(x) + pos_embed.
  const int64_t Db = cfg_.body_depth, Dh = cfg_.head_depth;
  s.xs.assign(Db + Dh + 2, Tensor());
  s.blk.resize(Db + Dh);
  body_forward(A, s_embedder_, x);
  // s = silu(t_emb broadcast + body output), projected to the head width.
  s.spre = A.empty({B, T, Wb});
  nn::add_per_sample(A, s.spre, s.xs[Db], s.temb);
  s.s = A.empty({B, T, Wb});
  ops::silu_forward(s.s, s.spre);
  if (has_projector_) {
    s.sp = A.empty({B, T, Wh});
    s_projector_.forward(ps_, s.sp.view({N, Wh}), s.s.view({N, Wb}));
  } else {
    s.sp = s.s;
  }
  // Head on a fresh embedding of x, conditioned per token on s.
  const int64_t h0 = Db + 1;
  s.xs[h0] = A.empty({B, T, Wh});
  x_embedder_.forward(ps_, s.xs[h0].view({N, Wh}), x.view({N, C}));
  Chain head = chain(A, {B, T, Wh});
  for (int64_t j = 0; j < Dh; ++j) {
    s.xs[h0 + j + 1] = chain_next(A, head, {B, T, Wh});
    block_forward(Db + j, A, s.blk[Db + j], s.xs[h0 + j + 1], s.xs[h0 + j], s.sp, head_cos_,
                  head_sin_);
  }
  // Final layer: per-token shift/scale from SiLU -> Linear of s, no gate.
  s.fa = A.empty({N, Wh});
  ops::silu_forward(s.fa, s.sp.view({N, Wh}));
  Tensor shift = A.empty({N, Wh});
  s.f_scale = A.empty({N, Wh});
  nn::chunked_linear_forward(ps_, final_ada_, {shift, s.f_scale}, s.fa);
  s.rstd_f = A.empty({N}, DType::F32);
  s.hf = A.empty({B, T, Wh});
  ops::rmsnorm_modulate_forward(s.hf, s.rstd_f, s.xs[h0 + Dh], ps_.value(final_norm_),
                                shift.view({B, T, Wh}), s.f_scale.view({B, T, Wh}), kNormEps);
  final_linear_.forward(ps_, out.view({N, C}), s.hf.view({N, Wh}));
}

void DiTDH::backward(nn::Arena& A, const Tensor& dout) {
  RAE_CHECK(backward_ready_, type(), " backward: the last forward was not a training forward");
  if (plain_) return backward_plain(A, dout);
  Saved& s = sv_;
  const int64_t B = s.B, T = cfg_.tokens(), C = cfg_.in_channels, N = B * T;
  const int64_t Wb = cfg_.body_width, Wh = cfg_.head_width;
  const int64_t Db = cfg_.body_depth, Dh = cfg_.head_depth, h0 = Db + 1;
  // Final layer.
  Tensor dhf = A.zeros({B, T, Wh});
  final_linear_.backward(ps_, dhf.view({N, Wh}), dout.view({N, C}), s.hf.view({N, Wh}));
  Tensor dxh = A.zeros({B, T, Wh});
  Tensor dshift = A.zeros({N, Wh}), dscale = A.zeros({N, Wh});
  ops::rmsnorm_modulate_backward(dxh, ps_.grad(final_norm_), dshift.view({B, T, Wh}),
                                 dscale.view({B, T, Wh}), dhf, s.xs[h0 + Dh],
                                 ps_.value(final_norm_), s.f_scale.view({B, T, Wh}), s.rstd_f);
  Tensor dfa = A.zeros({N, Wh});
  nn::chunked_linear_backward(ps_, final_ada_, dfa, {dshift, dscale}, s.fa);
  Tensor dsp = A.zeros({B, T, Wh});
  ops::silu_backward(dsp.view({N, Wh}), dfa, s.sp.view({N, Wh}));
  // Head blocks.
  for (int64_t j = Dh - 1; j >= 0; --j)
    block_backward(Db + j, A, s.blk[Db + j], dxh, dsp, head_cos_, head_sin_);
  x_embedder_.backward(ps_, Tensor(), dxh.view({N, Wh}), s.x.view({N, C}));
  // s path back to the body output and t_emb.
  Tensor ds;
  if (has_projector_) {
    ds = A.zeros({B, T, Wb});
    s_projector_.backward(ps_, ds.view({N, Wb}), dsp.view({N, Wh}), s.s.view({N, Wb}));
  } else {
    ds = dsp;
  }
  Tensor dxb = A.zeros({B, T, Wb});  // dL/d(body output) = dL/dspre
  ops::silu_backward(dxb, ds, s.spre);
  Tensor dtemb = A.zeros({B, Wb});
  nn::sum_tokens_add(A, dtemb, dxb);
  Tensor dc = A.zeros({B, Wb});
  body_backward(A, s_embedder_, dxb, dc);
  // c = silu(t_emb + y_emb).
  Tensor dcpre = A.zeros({B, Wb});
  ops::silu_backward(dcpre, dc, s.cpre);
  ops::add_(dtemb, dcpre);
  condition_backward(A, dtemb, dcpre);
}

void DiTDH::body_forward(nn::Arena& A, const nn::Linear& embedder, const Tensor& x) {
  Saved& s = sv_;
  const int64_t B = x.dim(0), T = cfg_.tokens(), C = cfg_.in_channels, W = cfg_.body_width;
  Tensor emb = A.empty({B, T, W});
  embedder.forward(ps_, emb.view({B * T, W}), x.view({B * T, C}));
  s.xs[0] = A.empty({B, T, W});
  ops::add_rowwise(s.xs[0].view({B, T * W}), emb.view({B, T * W}),
                   ps_.buffer(pos_embed_).view({T * W}));
  Chain body = chain(A, {B, T, W});
  for (int64_t i = 0; i < cfg_.body_depth; ++i) {
    s.xs[i + 1] = chain_next(A, body, {B, T, W});
    block_forward(i, A, s.blk[i], s.xs[i + 1], s.xs[i], s.c, body_cos_, body_sin_);
  }
}

void DiTDH::body_backward(nn::Arena& A, const nn::Linear& embedder, const Tensor& dx,
                          const Tensor& dc) {
  const Saved& s = sv_;
  const int64_t N = s.B * cfg_.tokens();
  for (int64_t i = cfg_.body_depth - 1; i >= 0; --i)
    block_backward(i, A, s.blk[i], dx, dc, body_cos_, body_sin_);
  embedder.backward(ps_, Tensor(), dx.view({N, cfg_.body_width}), s.x.view({N, cfg_.in_channels}));
}

void DiTDH::condition_forward(nn::Arena& A, const Tensor& c_sum, const Tensor& t, const Tensor& y) {
  Saved& s = sv_;
  const int64_t B = t.dim(0), W = cfg_.body_width;
  s.tf = A.empty({B, 2 * cfg_.fourier_size});  // (B, 2F)
  ops::fourier_features(s.tf, t, ps_.buffer(fourier_W_));
  s.th = A.empty({B, W});
  t_mlp0_.forward(ps_, s.th, s.tf);
  s.ta = A.empty({B, W});
  ops::silu_forward(s.ta, s.th);
  s.temb = A.empty({B, W});
  t_mlp2_.forward(ps_, s.temb, s.ta);
  Tensor yemb = A.empty({B, W});
  ops::embedding_forward(yemb, ps_.value(label_table_), y);
  ops::add(c_sum, s.temb, yemb);
}

void DiTDH::condition_backward(nn::Arena& A, const Tensor& dtemb, const Tensor& dsum) {
  const Saved& s = sv_;
  const int64_t B = s.B, W = cfg_.body_width;
  ops::embedding_backward(ps_.grad(label_table_), dsum, s.y);
  Tensor dta = A.zeros({B, W});
  t_mlp2_.backward(ps_, dta, dtemb, s.ta);
  Tensor dth = A.zeros({B, W});
  ops::silu_backward(dth, dta, s.th);
  t_mlp0_.backward(ps_, Tensor(), dth, s.tf);
}

}  // namespace rae::models
