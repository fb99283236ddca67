#include "models/dino_disc.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "ops/batchnorm.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/pad.h"
#include "ops/relu.h"
#include "ops/spectral_norm.h"

namespace rae::models {

namespace {

constexpr double kSlope = 0.2;
// ResidualBlock's ratio 1 / np.sqrt(2), applied to a float32 tensor.
const double kInvSqrt2 = 1.0 / std::sqrt(2.0);

}  // namespace

std::string DinoDiscConfig::to_json() const {
  return nlohmann::json{{"channels", channels},
                        {"heads", heads},
                        {"kernel_size", kernel_size},
                        {"norm_eps", norm_eps}}
      .dump();
}

DinoDiscConfig DinoDiscConfig::from_json(const std::string& text) {
  DinoDiscConfig c;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    RAE_THROW("DinoDisc config: invalid JSON: ", e.what());
  }
  RAE_CHECK(j.is_object(), "DinoDisc config must be a JSON object, got ", text);
  for (auto& [k, v] : j.items()) {
    try {
      if (k == "channels")
        c.channels = v.get<int64_t>();
      else if (k == "heads")
        c.heads = v.get<int64_t>();
      else if (k == "kernel_size")
        c.kernel_size = v.get<int64_t>();
      else if (k == "norm_eps")
        c.norm_eps = v.get<double>();
      else
        RAE_THROW("unknown key");
    } catch (const std::exception& e) {
      RAE_THROW("DinoDisc config key '", k, "': ", e.what());
    }
  }
  RAE_CHECK(c.channels >= 1 && c.heads >= 1 && c.kernel_size >= 1 && c.kernel_size % 2 == 1 &&
                c.norm_eps > 0,
            "DinoDisc config ", text,
            ": channels, heads >= 1, an odd kernel_size and norm_eps > 0");
  return c;
}

nlohmann::json DinoDiscHeads::config() const {
  return nlohmann::json::parse(cfg_.to_json());
}

DinoDiscHeads::SnConv DinoDiscHeads::declare_conv(const std::string& name, int64_t out, int64_t k) {
  const int64_t C = cfg_.channels;
  SnConv c;
  c.out = out;
  c.k = k;
  c.w = ps_.add(name + ".weight_orig", {out, k, C});
  c.b = ps_.add(name + ".bias", {out});
  c.u = ps_.add_buffer(name + ".weight_u", {out});
  c.v = ps_.add_buffer(name + ".weight_v", {k * C});
  return c;
}

DinoDiscHeads::DinoDiscHeads(const DinoDiscConfig& cfg) : cfg_(cfg) {
  const int64_t C = cfg.channels;
  for (int64_t h = 0; h < cfg.heads; ++h) {
    const std::string p = "heads." + std::to_string(h);
    ps_.begin_group(p);
    Head hd;
    hd.c1 = declare_conv(p + ".0.0", C, 1);
    hd.bn1_w = ps_.add(p + ".0.1.weight", {C});
    hd.bn1_b = ps_.add(p + ".0.1.bias", {C});
    hd.c2 = declare_conv(p + ".1.fn.0", C, cfg.kernel_size);
    hd.bn2_w = ps_.add(p + ".1.fn.1.weight", {C});
    hd.bn2_b = ps_.add(p + ".1.fn.1.bias", {C});
    hd.c3 = declare_conv(p + ".2", 1, 1);
    heads_.push_back(hd);
  }
  ps_.allocate();
}

void DinoDiscHeads::init(uint64_t seed) {
  auto fill = [&](const Tensor& t, uint64_t id, auto gen) {
    float* p = t.data<float>();
    rng::Key k{seed, rng::Purpose::Init, 0, id};
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = gen(k, static_cast<uint64_t>(i));
  };
  auto uniform = [&](int id, double bound) {
    fill(ps_.value(id), static_cast<uint64_t>(id), [bound](const rng::Key& k, uint64_t i) {
      return static_cast<float>((2.0 * rng::uniform_at(k, i) - 1.0) * bound);
    });
  };
  // u, v: normalize(N(0, 1)), keyed past the parameters.
  auto unit = [&](int buffer, uint64_t id) {
    Tensor t = ps_.buffer(buffer);
    fill(t, id, [](const rng::Key& k, uint64_t i) { return rng::normal_at(k, i); });
    double s = 0;
    for (int64_t i = 0; i < t.numel(); ++i) s += double(t.data<float>()[i]) * t.data<float>()[i];
    const double n = std::max(std::sqrt(s), 1e-12);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(t.data<float>()[i] / n);
  };
  uint64_t buf_id = 1000000;
  for (Head& h : heads_) {
    for (SnConv* c : {&h.c1, &h.c2, &h.c3}) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(cfg_.channels * c->k));
      uniform(c->w, bound);
      uniform(c->b, bound);
      unit(c->u, buf_id++);
      unit(c->v, buf_id++);
    }
    Tensor(ps_.value(h.bn1_w)).fill_(1.0);
    Tensor(ps_.value(h.bn2_w)).fill_(1.0);
    Tensor(ps_.value(h.bn1_b)).zero_();
    Tensor(ps_.value(h.bn2_b)).zero_();
  }
}

void DinoDiscHeads::to(Device device) {
  ps_.to_device(device);
}

void DinoDiscHeads::conv_forward(nn::Arena& A, const SnConv& c, const Tensor& x, const Tensor& out,
                                 int power_iterations, Tensor* w_sn, Tensor* sigma) {
  const Tensor& w = ps_.value(c.w);
  *w_sn = A.empty(w.shape(), DType::F32);
  *sigma = A.empty({1}, DType::F32);
  ops::spectral_norm_forward(*w_sn, *sigma, w, ps_.buffer(c.u), ps_.buffer(c.v), power_iterations,
                             1e-12);
  ops::conv1d_forward(out, x, *w_sn, ps_.value(c.b), ops::Conv1dParams{1, 0, false});
}

void DinoDiscHeads::conv_backward(nn::Arena& A, const SnConv& c, const Tensor& dx,
                                  const Tensor& dout, const Tensor& x, const Tensor& w_sn,
                                  const Tensor& sigma) {
  const Tensor& dw = ps_.grad(c.w);  // undefined while frozen
  Tensor dw_sn = dw.defined() ? A.zeros(w_sn.shape(), DType::F32) : Tensor();
  ops::conv1d_backward(dx, dw_sn, ps_.grad(c.b), dout, x, w_sn, ops::Conv1dParams{1, 0, false});
  if (dw.defined())
    ops::spectral_norm_backward(dw, dw_sn, ps_.value(c.w), ps_.buffer(c.u), ps_.buffer(c.v), sigma);
}

void DinoDiscHeads::forward(nn::Arena& A, const std::vector<Tensor>& feats, const Tensor& logits,
                            int power_iterations, Saved* saved) {
  const int64_t NH = cfg_.heads, C = cfg_.channels;
  RAE_CHECK(static_cast<int64_t>(feats.size()) == NH, "DinoDisc: ", feats.size(),
            " feature maps for ", NH, " heads");
  const int64_t B = feats[0].dim(0), L = feats[0].dim(1), pad = cfg_.kernel_size / 2;
  for (const Tensor& f : feats)
    RAE_CHECK(
        f.ndim() == 3 && f.dim(0) == B && f.dim(1) == L && f.dim(2) == C && f.dtype() == DType::F32,
        "DinoDisc: feature map ", f.str(), " is not f32 (", B, ", ", L, ", ", C, ")");
  RAE_CHECK(logits.shape() == Shape({NH, B, L}) && logits.dtype() == DType::F32,
            "DinoDisc: logits ", logits.str(), " must be f32 (", NH, ", ", B, ", ", L, ")");
  RAE_CHECK(L > 1 && pad <= L, "DinoDisc: ", L, " tokens are too few for kernel ",
            cfg_.kernel_size);
  if (saved) {
    saved->heads.assign(static_cast<size_t>(NH), HeadActs{});
    saved->B = B;
    saved->L = L;
  }
  for (int64_t k = 0; k < NH; ++k) {
    const Head& h = heads_[k];
    HeadActs local;
    HeadActs& s = saved ? saved->heads[k] : local;
    s.f = feats[k];
    auto act = [&](const Shape& shape) { return A.empty(shape, DType::F32); };
    s.y1 = act({B, L, C}), s.a1 = act({B, L, C}), s.mean1 = act({B, C}), s.rstd1 = act({B, C});
    conv_forward(A, h.c1, s.f, s.y1, power_iterations, &s.w_sn[0], &s.sigma[0]);
    ops::batchnorm_train_forward(s.a1, s.mean1, s.rstd1, s.y1, ps_.value(h.bn1_w),
                                 ps_.value(h.bn1_b), Tensor(), Tensor(), 0.1, cfg_.norm_eps, B);
    ops::leaky_relu_forward(s.a1, s.a1, kSlope);
    s.pad = act({B, L + 2 * pad, C});
    ops::pad_circular1d_forward(s.pad, s.a1, pad);
    s.y2 = act({B, L, C}), s.a2 = act({B, L, C}), s.mean2 = act({B, C}), s.rstd2 = act({B, C});
    conv_forward(A, h.c2, s.pad, s.y2, power_iterations, &s.w_sn[1], &s.sigma[1]);
    ops::batchnorm_train_forward(s.a2, s.mean2, s.rstd2, s.y2, ps_.value(h.bn2_w),
                                 ps_.value(h.bn2_b), Tensor(), Tensor(), 0.1, cfg_.norm_eps, B);
    ops::leaky_relu_forward(s.a2, s.a2, kSlope);
    s.r = act({B, L, C});
    ops::add(s.r, s.a2, s.a1);
    ops::scale_(s.r, kInvSqrt2);
    conv_forward(A, h.c3, s.r, logits.select(0, k).view({B, L, 1}), power_iterations, &s.w_sn[2],
                 &s.sigma[2]);
  }
}

void DinoDiscHeads::backward(nn::Arena& A, const Saved& sv, const Tensor& dlogits,
                             const std::vector<Tensor>& dfeats) {
  const int64_t NH = cfg_.heads, C = cfg_.channels, B = sv.B, L = sv.L;
  const int64_t pad = cfg_.kernel_size / 2;
  RAE_CHECK(static_cast<int64_t>(sv.heads.size()) == NH && dlogits.shape() == Shape({NH, B, L}),
            "DinoDisc::backward: dlogits ", dlogits.str(), " does not match the saved forward");
  for (int64_t k = 0; k < NH; ++k) {
    const Head& h = heads_[k];
    const HeadActs& s = sv.heads[k];
    auto zeros = [&](const Shape& shape) { return A.zeros(shape, DType::F32); };
    Tensor dr = zeros({B, L, C});
    conv_backward(A, h.c3, dr, dlogits.select(0, k).view({B, L, 1}), s.r, s.w_sn[2], s.sigma[2]);
    ops::scale_(dr, kInvSqrt2);  // r = (a2 + a1) / sqrt(2)
    Tensor da1 = A.empty(dr.shape(), DType::F32);
    da1.copy_from(dr);
    // The residual branch. LeakyReLU ran in place: its output has its input's sign.
    Tensor dn2 = zeros({B, L, C}), dy2 = zeros({B, L, C}), dpad = zeros({B, L + 2 * pad, C});
    ops::leaky_relu_backward(dn2, dr, s.a2, kSlope);
    ops::batchnorm_train_backward(dy2, ps_.grad(h.bn2_w), ps_.grad(h.bn2_b), dn2, s.y2,
                                  ps_.value(h.bn2_w), s.mean2, s.rstd2, B);
    conv_backward(A, h.c2, dpad, dy2, s.pad, s.w_sn[1], s.sigma[1]);
    ops::pad_circular1d_backward(da1, dpad, pad);
    Tensor dn1 = zeros({B, L, C}), dy1 = zeros({B, L, C});
    ops::leaky_relu_backward(dn1, da1, s.a1, kSlope);
    ops::batchnorm_train_backward(dy1, ps_.grad(h.bn1_w), ps_.grad(h.bn1_b), dn1, s.y1,
                                  ps_.value(h.bn1_w), s.mean1, s.rstd1, B);
    const Tensor& df = k < static_cast<int64_t>(dfeats.size()) ? dfeats[k] : Tensor();
    conv_backward(A, h.c1, df, dy1, s.f, s.w_sn[0], s.sigma[0]);
  }
}

}  // namespace rae::models
