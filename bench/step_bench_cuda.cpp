// DiT^DH training-step benchmark on one GPU: forward + backward + gradient norm + AdamW + EMA
// of DiT^DH-XL and DiT^DH-S on 16x16x768 tokens in bf16 (F32 master weights, gradients and
// optimizer state; a bf16 copy of the weights refreshed after each step), written directly on
// rae::ops::cuda so that it measures the real op costs. The block structure follows the RAE
// release's DDT.py (and src/nn/dit_block.cpp): adaLN (SiLU -> Linear -> 6 chunks, strided views,
// no copies), RMSNorm+modulate, qkv Linear, 2D RoPE, fused attention, proj, gated residual,
// SwiGLU MLP; the head blocks and the final layer are modulated per token.
// Prints one JSON object per model and, with --json PATH, writes them as a JSON array.
// --profile: after the timed steps, one more step with every op (group) bracketed by CUDA events;
// prints a second JSON line per model ("<name>-profile": GPU ms, calls and, for GEMMs and
// attention, TFLOP/s per category) and a sorted table on stderr.
// FLOPs per image: see flops_per_image() and docs/perf/device/README.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embed.h"
#include "ops/linear.h"
#include "ops/modulate.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/precision.h"
#include "tensor/cuda_memory.h"

namespace rae {
namespace {

#ifdef STEP_BENCH_CPU_DRYRUN
// Wiring check without a GPU: the same step on the CPU ops in F32 (tiny model, see main).
namespace K = ops::cpu;
constexpr DType kAct = DType::F32;
Device dev() {
  return Device::cpu();
}
#else
namespace K = ops::cuda;
constexpr DType kAct = DType::BF16;
Device dev() {
  return Device::cuda();
}
#endif
constexpr double kEps = 1e-6;

// ---- --profile: GPU time per op category over one step ---------------------------------------
// Marks are CUDA events recorded on the legacy default stream (the one every op uses), or host
// clock readings in the CPU dry run (its ops are synchronous). Only the profiled step creates a
// Profiler; otherwise g_prof is null and Prof scopes do nothing.
class Profiler {
 public:
  struct Rec {
    std::string cat;
    double flops;
    int a, b;  // marks before and after
  };
  std::string phase = "fwd";  // prefix of the category names: fwd, bwd or opt
  int depth = 0;              // nested scopes are folded into the outermost
  std::vector<Rec> recs;
#ifdef STEP_BENCH_CPU_DRYRUN
  int mark() {
    times_.push_back(std::chrono::steady_clock::now());
    return (int)times_.size() - 1;
  }
  double ms(int a, int b) const {
    return std::chrono::duration<double, std::milli>(times_[b] - times_[a]).count();
  }
  void sync() {}

 private:
  std::vector<std::chrono::steady_clock::time_point> times_;
#else
  Profiler() {
    events_.resize(4096);  // created up front: about 2 marks per op call
    for (auto& e : events_) check(cudaEventCreate(&e), "cudaEventCreate");
  }
  ~Profiler() {
    for (auto& e : events_) cudaEventDestroy(e);
  }
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;
  int mark() {
    if (used_ == events_.size()) {
      events_.emplace_back();
      check(cudaEventCreate(&events_.back()), "cudaEventCreate");
    }
    check(cudaEventRecord(events_[used_], 0), "cudaEventRecord");
    return (int)used_++;
  }
  double ms(int a, int b) const {
    float t = 0;
    check(cudaEventElapsedTime(&t, events_[a], events_[b]), "cudaEventElapsedTime");
    return t;
  }
  void sync() {
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }

 private:
  static void check(cudaError_t e, const char* what) {
    RAE_CHECK(e == cudaSuccess, "profile: ", what, ": ", cudaGetErrorString(e));
  }
  std::vector<cudaEvent_t> events_;
  size_t used_ = 0;
#endif
};
Profiler* g_prof = nullptr;

// Times its lifetime as `<phase>.<name>` with `flops` (2 per multiply-add; 0 where not counted).
class Prof {
 public:
  explicit Prof(const char* name, double flops = 0) : name_(name), flops_(flops) {
    if (g_prof && g_prof->depth++ == 0) a_ = g_prof->mark();
  }
  ~Prof() {
    if (!g_prof) return;
    if (--g_prof->depth == 0 && a_ >= 0)
      g_prof->recs.push_back({g_prof->phase + "." + name_, flops_, a_, g_prof->mark()});
  }
  Prof(const Prof&) = delete;
  Prof& operator=(const Prof&) = delete;

 private:
  const char* name_;
  double flops_;
  int a_ = -1;
};
// TIMED("rope", K::rope_apply(...)); TIMED_F("attention", flops, K::attention_forward(...)).
#define TIMED(name, ...)    \
  do {                      \
    Prof prof_scope_(name); \
    __VA_ARGS__;            \
  } while (0)
#define TIMED_F(name, flops, ...)  \
  do {                             \
    Prof prof_scope_(name, flops); \
    __VA_ARGS__;                   \
  } while (0)

struct Config {
  std::string name;
  int64_t in_ch = 768, grid = 16, classes = 1000, fourier = 256;
  int64_t body_w = 1152, body_d = 28, body_h = 16;
  int64_t head_w = 2048, head_d = 2, head_h = 16;
  int64_t T() const { return grid * grid; }
};
Config config_for(const std::string& n) {
  Config c;
  c.name = "DiTDH-" + n;
  if (n == "XL") return c;
  if (n == "S") {
    c.body_w = 384, c.body_d = 12, c.body_h = 6;
    return c;
  }
  RAE_THROW("unknown model '", n, "' (XL or S)");
}
int64_t swiglu_hidden(int64_t w) {
  return static_cast<int64_t>(2.0 / 3.0 * (double)(w * 4));
}

// Analytic forward FLOPs per image (2 per multiply-add): every Linear (2 * T * in * out, per
// sample for the body's adaLN and the time MLP), attention 4 * T^2 * width per block (QK^T and
// PV); elementwise work is not counted. Training = 3x forward.
double flops_per_image(const Config& c) {
  const double T = (double)c.T();
  auto block = [&](double w, double tokens_for_ada) {
    double h = (double)swiglu_hidden((int64_t)w);
    double lin = 2 * T * (3 * w * w + w * w + w * 2 * h + h * w);
    double ada = 2 * tokens_for_ada * w * 6 * w;
    return lin + ada + 4 * T * T * w;
  };
  double f = 0;
  f += c.body_d * block((double)c.body_w, 1);
  f += c.head_d * block((double)c.head_w, T);
  f += 2 * T * c.in_ch * c.body_w;                              // s_embedder
  f += 2 * (2.0 * c.fourier * c.body_w + c.body_w * c.body_w);  // time MLP (per sample)
  f += 2 * T * c.body_w * c.head_w;                             // s_projector
  f += 2 * T * c.in_ch * c.head_w;                              // x_embedder
  f += 2 * T * c.head_w * 2 * c.head_w;                         // final adaLN (per token)
  f += 2 * T * c.head_w * c.in_ch;                              // final linear
  return f;
}

// ---- parameters: flat F32 master, grad, m, v, ema and a bf16 copy --------------------------
struct Params {
  std::vector<std::pair<int64_t, Shape>> slots;  // offset, shape
  int64_t total = 0;
  Tensor master, grad, m, v, ema, half;
  int add(const Shape& s) {
    slots.push_back({total, s});
    total += (s.numel() + 63) / 64 * 64;  // 256-byte aligned views for cuBLASLt
    return (int)slots.size() - 1;
  }
  Tensor view(const Tensor& flat, int id) const {
    return flat.narrow(0, slots[id].first, slots[id].second.numel()).view(slots[id].second);
  }
  Tensor w(int id) const { return view(half, id); }    // bf16 weight for GEMMs
  Tensor f(int id) const { return view(master, id); }  // F32 value (norm weights)
  Tensor g(int id) const { return view(grad, id); }
  void allocate(uint64_t seed) {
    Device d = dev();
    master = Tensor::empty({total}, DType::F32, d);
    // Values: one host block of N(0, 0.02) tiled over the buffer (speed does not depend on them).
    const int64_t blk = std::min<int64_t>(total, 1 << 22);
    Tensor host = Tensor::empty({blk}, DType::F32);
    float* hp = host.data<float>();
    for (int64_t i = 0; i < blk; ++i)
      hp[i] = 0.02f * (float)rng::normal_at(rng::Key{seed, rng::Purpose::Init, 0, 0}, (uint64_t)i);
    for (int64_t o = 0; o < total; o += blk) {
      int64_t n = std::min(blk, total - o);
      master.narrow(0, o, n).copy_from(host.narrow(0, 0, n));
    }
    grad = Tensor::zeros({total}, DType::F32, d);
    m = Tensor::zeros({total}, DType::F32, d);
    v = Tensor::zeros({total}, DType::F32, d);
    ema = master.clone();
#ifdef STEP_BENCH_CPU_DRYRUN
    half = master;
  }
  void refresh_half() {}
#else
    half = master.cast(DType::BF16);
  }
  void refresh_half() {
    cuda_memory::cast(half.raw(), DType::BF16, master.raw(), DType::F32, total);
  }
#endif
};

struct LinearP {
  int w = -1, b = -1;
  int64_t in = 0, out = 0;
  std::string name, name_dx, name_dw;  // profile categories: gemm.<kind>[.dx|.dw]
  void declare(Params& P, int64_t i, int64_t o, const char* kind, bool bias = true) {
    in = i, out = o;
    w = P.add({o, i});
    if (bias) b = P.add({o});
    name = std::string("gemm.") + kind;
    name_dx = name + ".dx";
    name_dw = name + ".dw";
  }
  double flops(const Tensor& x) const { return 2.0 * (double)(x.numel() / in) * in * out; }
  void fwd(const Params& P, const Tensor& y, const Tensor& x) const {
    TIMED_F(name.c_str(), flops(x), K::linear_forward(y, x, P.w(w), b >= 0 ? P.w(b) : Tensor()));
  }
  void bwd(const Params& P, const Tensor& dx, const Tensor& dy, const Tensor& x) const {
    if (!g_prof) {
      K::linear_backward(dx, P.g(w), b >= 0 ? P.g(b) : Tensor(), dy, x, P.w(w));
      return;
    }
    // Profiled: the same work as three calls, timed apart (dx GEMM, dw GEMM, bias reduction).
    const double f = flops(x);
    if (dx.defined()) TIMED_F(name_dx.c_str(), f, K::linear_backward(dx, {}, {}, dy, x, P.w(w)));
    TIMED_F(name_dw.c_str(), f, K::linear_backward({}, P.g(w), {}, dy, x, P.w(w)));
    if (b >= 0) TIMED("bias_grad", K::linear_backward({}, {}, P.g(b), dy, x, P.w(w)));
  }
};

Tensor act(const Shape& s) {
  return Tensor::empty(s, kAct, dev());
}
Tensor zact(const Shape& s) {
  Prof p("zero_fill");
  return Tensor::zeros(s, kAct, dev());
}
Tensor stat(const Shape& s) {
  return Tensor::empty(s, DType::F32, dev());
}

// ---- one DiT block ---------------------------------------------------------------------------
struct Block {
  int64_t C = 0, H = 0, D = 0, hidden = 0;
  int norm1 = -1, norm2 = -1;
  LinearP qkv, proj, w12, w3, ada;
  struct Saved {
    Tensor x_in, cond, cond_act, mod, rstd1, h1, qkv, att, lse, y1, x_mid, rstd2, h2, u, g, y2;
  };
  void declare(Params& P, int64_t width, int64_t heads) {
    C = width, H = heads, D = width / heads, hidden = swiglu_hidden(width);
    norm1 = P.add({C});
    qkv.declare(P, C, 3 * C, "qkv");
    proj.declare(P, C, C, "proj");
    norm2 = P.add({C});
    w12.declare(P, C, 2 * hidden, "mlp_w12");
    w3.declare(P, hidden, C, "mlp_w3");
    ada.declare(P, C, 6 * C, "ada");
  }
  // x_in, x_out (N, C) with N = B * T; cond (R, C), R = B (per sample) or N (per token).
  void fwd(const Params& P, Saved& s, const Tensor& x_out, const Tensor& x_in, const Tensor& cond,
           int64_t B, int64_t T, const Tensor& cos, const Tensor& sin) const {
    const int64_t N = B * T, R = cond.dim(0);
    s.x_in = x_in, s.cond = cond;
    s.cond_act = act({R, C});
    TIMED("silu", K::silu_forward(s.cond_act, cond));
    s.mod = act({R, 6 * C});
    ada.fwd(P, s.mod, s.cond_act);
    // Strided chunk views of the adaLN output: (B, C) per sample or (B, T, C) per token.
    auto chunk = [&](int k) {
      return R == B ? s.mod.narrow(1, k * C, C) : s.mod.view({B, T, 6 * C}).narrow(2, k * C, C);
    };
    auto v3 = [&](const Tensor& t) { return t.view({B, T, C}); };
    s.rstd1 = stat({N});
    s.h1 = act({N, C});
    TIMED("rmsnorm_modulate", K::rmsnorm_modulate_forward(v3(s.h1), s.rstd1, v3(x_in), P.f(norm1),
                                                          chunk(0), chunk(1), kEps));
    s.qkv = act({N, 3 * C});
    qkv.fwd(P, s.qkv, s.h1);
    Tensor q5 = s.qkv.view({B, T, 3, H, D});
    TIMED("rope", K::rope_apply(q5, cos, sin));
    s.att = act({B, T, H, D});
    s.lse = stat({B, H, T});
    // Attention FLOPs: QK^T and PV, 4 * B * T^2 * C forward, twice that backward (as in
    // flops_per_image; the backward's recomputed scores are not counted).
    TIMED_F("attention", 4.0 * B * T * T * C,
            K::attention_forward(s.att, s.lse, q5, 1.0 / std::sqrt((double)D)));
    s.y1 = act({N, C});
    proj.fwd(P, s.y1, s.att.view({N, C}));
    TIMED("gate_residual", s.x_mid = x_in.clone());
    TIMED("gate_residual", K::gate_residual_forward(v3(s.x_mid), v3(s.y1), chunk(2)));
    s.rstd2 = stat({N});
    s.h2 = act({N, C});
    TIMED("rmsnorm_modulate", K::rmsnorm_modulate_forward(v3(s.h2), s.rstd2, v3(s.x_mid),
                                                          P.f(norm2), chunk(3), chunk(4), kEps));
    s.u = act({N, 2 * hidden});
    w12.fwd(P, s.u, s.h2);
    s.g = act({N, hidden});
    TIMED("swiglu", K::swiglu_forward(s.g, s.u));
    s.y2 = act({N, C});
    w3.fwd(P, s.y2, s.g);
    TIMED("gate_residual", Tensor(x_out).copy_from(s.x_mid));
    TIMED("gate_residual", K::gate_residual_forward(v3(x_out), v3(s.y2), chunk(5)));
  }
  // dx (N, C): dL/dx_out on entry, dL/dx_in on return (accumulated in place). dcond += ...
  void bwd(const Params& P, const Saved& s, const Tensor& dx, const Tensor& dcond, int64_t B,
           int64_t T, const Tensor& cos, const Tensor& sin) const {
    const int64_t N = B * T, R = s.cond.dim(0);
    Tensor dmod = zact({R, 6 * C});
    auto chunk_of = [&](const Tensor& m, int k) {
      return R == B ? m.narrow(1, k * C, C) : m.view({B, T, 6 * C}).narrow(2, k * C, C);
    };
    auto chunk = [&](int k) { return chunk_of(s.mod, k); };
    auto dchunk = [&](int k) { return chunk_of(dmod, k); };
    auto v3 = [&](const Tensor& t) { return t.view({B, T, C}); };
    Tensor dy2 = zact({N, C});
    TIMED("gate_residual",
          K::gate_residual_backward(v3(dy2), dchunk(5), v3(dx), v3(s.y2), chunk(5)));
    Tensor dg = zact({N, hidden});
    w3.bwd(P, dg, dy2, s.g);
    Tensor du = zact({N, 2 * hidden});
    TIMED("swiglu", K::swiglu_backward(du, dg, s.u));
    Tensor dh2 = zact({N, C});
    w12.bwd(P, dh2, du, s.h2);
    TIMED("rmsnorm_modulate",
          K::rmsnorm_modulate_backward(v3(dx), P.g(norm2), dchunk(3), dchunk(4), v3(dh2),
                                       v3(s.x_mid), P.f(norm2), chunk(4), s.rstd2));
    Tensor dy1 = zact({N, C});
    TIMED("gate_residual",
          K::gate_residual_backward(v3(dy1), dchunk(2), v3(dx), v3(s.y1), chunk(2)));
    Tensor datt = zact({N, C});
    proj.bwd(P, datt, dy1, s.att.view({N, C}));
    Tensor dqkv = zact({B, T, 3, H, D});
    TIMED_F("attention", 8.0 * B * T * T * C,
            K::attention_backward(dqkv, datt.view({B, T, H, D}), s.qkv.view({B, T, 3, H, D}), s.att,
                                  s.lse, 1.0 / std::sqrt((double)D)));
    TIMED("rope", K::rope_apply_backward(dqkv, cos, sin));
    Tensor dh1 = zact({N, C});
    qkv.bwd(P, dh1, dqkv.view({N, 3 * C}), s.h1);
    TIMED("rmsnorm_modulate",
          K::rmsnorm_modulate_backward(v3(dx), P.g(norm1), dchunk(0), dchunk(1), v3(dh1),
                                       v3(s.x_in), P.f(norm1), chunk(1), s.rstd1));
    Tensor dact = zact({R, C});
    ada.bwd(P, dact, dmod, s.cond_act);
    TIMED("silu", K::silu_backward(dcond, dact, s.cond));
  }
};

// ---- the model -------------------------------------------------------------------------------
struct Model {
  Config cfg;
  Params P;
  LinearP s_emb, x_emb, s_proj, t0, t2, f_ada, f_lin;
  int label_table = -1, f_norm = -1, fourier_W = -1, pos = -1;
  std::vector<Block> body, head;
  Tensor bcos, bsin, hcos, hsin;

  explicit Model(const Config& c) : cfg(c) {
    const int64_t Wb = c.body_w, Wh = c.head_w;
    s_emb.declare(P, c.in_ch, Wb, "embed");
    x_emb.declare(P, c.in_ch, Wh, "embed");
    s_proj.declare(P, Wb, Wh, "embed");
    t0.declare(P, 2 * c.fourier, Wb, "embed");
    t2.declare(P, Wb, Wb, "embed");
    label_table = P.add({c.classes + 1, Wb});
    fourier_W = P.add({c.fourier});  // a fixed buffer in the model; harmless to carry here
    pos = P.add({c.T(), Wb});
    body.resize(c.body_d);
    for (auto& b : body) b.declare(P, Wb, c.body_h);
    head.resize(c.head_d);
    for (auto& b : head) b.declare(P, Wh, c.head_h);
    f_norm = P.add({Wh});
    f_ada.declare(P, Wh, 2 * Wh, "ada");
    f_lin.declare(P, Wh, c.in_ch, "final");
    auto tables = [&](int64_t heads, int64_t width, Tensor& cs, Tensor& sn) {
      int64_t D = width / heads;
      Tensor hc = Tensor::empty({c.T(), D}), hs = Tensor::empty({c.T(), D});
      ops::rope2d_tables(hc, hs, c.grid, c.grid, D, 10000.0);
      cs = hc.to(dev()), sn = hs.to(dev());
    };
    tables(c.body_h, Wb, bcos, bsin);
    tables(c.head_h, Wh, hcos, hsin);
  }
  int64_t num_params() const { return P.total; }

  struct Saved {
    Tensor x, tf, th, ta, temb, yemb, c, s0;
    std::vector<Block::Saved> b, h;
    std::vector<Tensor> xs, hs;  // block inputs (then the last output)
    Tensor spre, s_act, sp, fa, fmod, rstd_f, hf, out;
  } S;

  // x (N, in) bf16, t (B) F32, y (B) I32 -> out (N, in) bf16.
  void forward(const Tensor& x, const Tensor& t, const Tensor& y, int64_t B) {
    const int64_t T = cfg.T(), N = B * T, Wb = cfg.body_w, Wh = cfg.head_w;
    S.x = x;
    S.tf = act({B, 2 * cfg.fourier});
    TIMED("embed", K::fourier_features(S.tf, t, P.f(fourier_W)));
    S.th = act({B, Wb});
    t0.fwd(P, S.th, S.tf);
    S.ta = act({B, Wb});
    TIMED("silu", K::silu_forward(S.ta, S.th));
    S.temb = act({B, Wb});
    t2.fwd(P, S.temb, S.ta);
    S.yemb = act({B, Wb});
    TIMED("embed", K::embedding_forward(S.yemb, P.f(label_table), y));
    S.c = act({B, Wb});
    TIMED("embed", K::add(S.c, S.temb, S.yemb));  // blocks apply SiLU -> Linear to it
    S.s0 = act({N, Wb});
    s_emb.fwd(P, S.s0, x);
    TIMED("embed", K::add_rowwise(S.s0, S.s0, P.f(pos)));  // + the fixed (T, C) position table
    S.xs.assign(1, S.s0);
    S.b.resize(body.size());
    for (size_t i = 0; i < body.size(); ++i) {
      Tensor o = act({N, Wb});
      body[i].fwd(P, S.b[i], o, S.xs.back(), S.c, B, T, bcos, bsin);
      S.xs.push_back(o);
    }
    // Head conditioning: s = s_projector(silu(t_emb broadcast + body output)), per token.
    S.spre = act({N, Wb});
    Tensor zero_scale = zact({B, Wb});
    TIMED("other", K::modulate_forward(S.spre.view({B, T, Wb}), S.xs.back().view({B, T, Wb}),
                                       S.temb, zero_scale));
    S.s_act = act({N, Wb});
    TIMED("silu", K::silu_forward(S.s_act, S.spre));
    S.sp = act({N, Wh});
    s_proj.fwd(P, S.sp, S.s_act);
    Tensor xh = act({N, Wh});
    x_emb.fwd(P, xh, x);
    S.hs.assign(1, xh);
    S.h.resize(head.size());
    for (size_t i = 0; i < head.size(); ++i) {
      Tensor o = act({N, Wh});
      head[i].fwd(P, S.h[i], o, S.hs.back(), S.sp, B, T, hcos, hsin);
      S.hs.push_back(o);
    }
    S.fa = act({N, Wh});
    TIMED("silu", K::silu_forward(S.fa, S.sp));
    S.fmod = act({N, 2 * Wh});
    f_ada.fwd(P, S.fmod, S.fa);
    S.rstd_f = stat({N});
    S.hf = act({N, Wh});
    Tensor fm3 = S.fmod.view({B, T, 2 * Wh});
    TIMED("rmsnorm_modulate", K::rmsnorm_modulate_forward(
                                  S.hf.view({B, T, Wh}), S.rstd_f, S.hs.back().view({B, T, Wh}),
                                  P.f(f_norm), fm3.narrow(2, 0, Wh), fm3.narrow(2, Wh, Wh), kEps));
    S.out = act({N, cfg.in_ch});
    f_lin.fwd(P, S.out, S.hf);
  }

  void backward(const Tensor& dout, const Tensor& y, int64_t B) {
    const int64_t T = cfg.T(), N = B * T, Wb = cfg.body_w, Wh = cfg.head_w;
    Tensor dhf = zact({N, Wh});
    f_lin.bwd(P, dhf, dout, S.hf);
    Tensor dx_h = zact({N, Wh});
    Tensor dfmod = zact({N, 2 * Wh});
    Tensor dfm3 = dfmod.view({B, T, 2 * Wh}), fm3 = S.fmod.view({B, T, 2 * Wh});
    TIMED("rmsnorm_modulate",
          K::rmsnorm_modulate_backward(dx_h.view({B, T, Wh}), P.g(f_norm), dfm3.narrow(2, 0, Wh),
                                       dfm3.narrow(2, Wh, Wh), dhf.view({B, T, Wh}),
                                       S.hs.back().view({B, T, Wh}), P.f(f_norm),
                                       fm3.narrow(2, Wh, Wh), S.rstd_f));
    Tensor dfa = zact({N, Wh});
    f_ada.bwd(P, dfa, dfmod, S.fa);
    Tensor dsp = zact({N, Wh});
    TIMED("silu", K::silu_backward(dsp, dfa, S.sp));
    for (size_t i = head.size(); i-- > 0;) head[i].bwd(P, S.h[i], dx_h, dsp, B, T, hcos, hsin);
    x_emb.bwd(P, Tensor(), dx_h, S.x);  // no gradient to x_t
    Tensor ds_act = zact({N, Wb});
    s_proj.bwd(P, ds_act, dsp, S.s_act);
    Tensor dspre = zact({N, Wb});
    TIMED("silu", K::silu_backward(dspre, ds_act, S.spre));
    // spre = body_out + temb: dbody_out = dspre, dtemb += sum over tokens.
    Tensor dx_b;
    TIMED("other", dx_b = dspre.clone());
    Tensor dtemb = zact({B, Wb});
    Tensor zero_scale = zact({B, Wb});
    TIMED("other", K::modulate_backward(Tensor(), dtemb, Tensor(), dspre.view({B, T, Wb}),
                                        S.xs.back().view({B, T, Wb}), zero_scale));
    Tensor dc = zact({B, Wb});
    for (size_t i = body.size(); i-- > 0;) body[i].bwd(P, S.b[i], dx_b, dc, B, T, bcos, bsin);
    s_emb.bwd(P, Tensor(), dx_b, S.x);
    // c = temb + yemb.
    TIMED("embed", K::add_(dtemb, dc, 1.0));
    TIMED("embed", K::embedding_backward(P.g(label_table), dc, y));
    Tensor dta = zact({B, Wb});
    t2.bwd(P, dta, dtemb, S.ta);
    Tensor dth = zact({B, Wb});
    TIMED("silu", K::silu_backward(dth, dta, S.th));
    t0.bwd(P, Tensor(), dth, S.tf);
  }
};

struct Result {
  std::string name;
  int64_t batch = 0, params = 0, steps = 0;
  double ms_per_step = 0, images_per_s = 0, tflops = 0, mfu = 0, peak_mem_gb = 0, loss = 0;
  double gflop_per_image = 0;
  bool ok = false;
  std::string error;
  // --profile: per category (phase.name) GPU ms, FLOPs and calls of the profiled step.
  struct Cat {
    double ms = 0, flops = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Cat> profile;
  double profile_total_ms = 0;  // the whole profiled step, first mark to last
  std::string profile_error;
};

double sync_ms(std::chrono::steady_clock::time_point t0) {
#ifndef STEP_BENCH_CPU_DRYRUN
  RAE_CHECK(cudaDeviceSynchronize() == cudaSuccess,
            "CUDA error: ", cudaGetErrorString(cudaGetLastError()));
#endif
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

Result run_model(const Config& cfg, int64_t B, int warmup, int steps, double peak_tflops,
                 bool profile) {
  Result r;
  r.name = cfg.name;
  r.batch = B;
  Model model(cfg);
  r.params = model.num_params();
  model.P.allocate(42);
  const int64_t T = cfg.T(), N = B * T;
  Device d = dev();
  // Data: fixed random tokens, noise, labels and times (the step's cost does not depend on them).
  auto host_randn = [](const Shape& s, uint64_t seed) {
    Tensor h = Tensor::empty(s, DType::F32);
    float* p = h.data<float>();
    for (int64_t i = 0; i < h.numel(); ++i)
      p[i] = (float)rng::normal_at(rng::Key{seed, rng::Purpose::Test, 0, 0}, (uint64_t)i);
    return h;
  };
  Tensor x0 = host_randn({N, cfg.in_ch}, 1).cast(kAct).to(d);
  Tensor eps = host_randn({N, cfg.in_ch}, 2).cast(kAct).to(d);
  Tensor th = Tensor::empty({B}, DType::F32), yh = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b) {
    th.data<float>()[b] = (float)((b + 0.5) / (double)B);
    yh.data<int32_t>()[b] = (int32_t)(b * 37 % (cfg.classes + 1));
  }
  Tensor t = th.to(d), y = yh.to(d);
  Tensor xt = act({N, cfg.in_ch}), target = act({N, cfg.in_ch});
  ops::AdamWParams hp;
  auto phase = [](const char* p) {
    if (g_prof) g_prof->phase = p;
  };
  auto step = [&](int64_t k) {
    auto v3 = [&](const Tensor& a) { return a.view({B, T, cfg.in_ch}); };
    phase("fwd");
    TIMED("other", K::flow_interpolate(v3(xt), v3(target), v3(x0), v3(eps), t));
    phase("opt");
    TIMED("zero_grad", model.P.grad.zero_());
    phase("fwd");
    model.forward(xt, t, y, B);
    TIMED("loss", r.loss = K::mse_forward(model.S.out, target));
    phase("bwd");
    Tensor dout = zact({N, cfg.in_ch});
    TIMED("loss", K::mse_backward(dout, model.S.out, target, 1.0));
    model.backward(dout, y, B);
    phase("opt");
    double gn = 0;
    TIMED("grad_norm", gn = std::sqrt(K::sum_squares(model.P.grad)));
    hp.step = k + 1;
    hp.grad_scale = std::isfinite(gn) ? std::min(1.0, 1.0 / (gn + 1e-6)) : 0.0;
    TIMED("adamw", K::adamw_step(model.P.master, model.P.grad, model.P.m, model.P.v, hp));
    TIMED("ema", K::ema_update(model.P.ema, model.P.master, 0.9995));
    TIMED("cast_bf16", model.P.refresh_half());
    model.S = Model::Saved{};  // release the activations
  };
  for (int i = 0; i < warmup; ++i) step(i);
  sync_ms(std::chrono::steady_clock::now());
#ifndef STEP_BENCH_CPU_DRYRUN
  cuda_memory::reset_peak();
#endif
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step(warmup + i);
  double ms = sync_ms(t0) / steps;
  r.steps = steps;
  r.ms_per_step = ms;
  r.images_per_s = B / (ms / 1000.0);
  r.gflop_per_image = 3 * flops_per_image(cfg) / 1e9;
  r.tflops = r.images_per_s * r.gflop_per_image / 1e3;
  r.mfu = r.tflops / peak_tflops;
#ifndef STEP_BENCH_CPU_DRYRUN
  r.peak_mem_gb = cuda_memory::stats().peak_in_use / 1e9;
#endif
  if (profile) {  // one more step, every op call bracketed by marks
    try {         // a failure here keeps the timed result above
      Profiler prof;
      g_prof = &prof;
      struct Detach {
        ~Detach() { g_prof = nullptr; }
      } detach;
      prof.sync();
      const int first = prof.mark();
      step(warmup + steps);
      const int last = prof.mark();
      g_prof = nullptr;
      prof.sync();
      r.profile_total_ms = prof.ms(first, last);
      for (const auto& rec : prof.recs) {
        Result::Cat& c = r.profile[rec.cat];
        c.ms += prof.ms(rec.a, rec.b);
        c.flops += rec.flops;
        c.calls += 1;
      }
    } catch (const std::exception& e) {
      r.profile_error = e.what();
      std::fprintf(stderr, "[profile] %s batch %lld failed: %s\n", cfg.name.c_str(), (long long)B,
                   e.what());
    }
  }
  r.ok = true;
  return r;
}

// The --profile JSON line and, on stderr, the categories sorted by time.
std::string profile_report(const Result& r, const std::string& card, double peak_tflops) {
  std::vector<std::pair<std::string, Result::Cat>> cats(r.profile.begin(), r.profile.end());
  double covered = 0, gemm_ms = 0, gemm_flops = 0;
  std::map<std::string, double> phase_ms;  // fwd, bwd, opt
  for (const auto& [name, c] : cats) {
    covered += c.ms;
    phase_ms[name.substr(0, name.find('.'))] += c.ms;
    if (name.find(".gemm.") != std::string::npos) gemm_ms += c.ms, gemm_flops += c.flops;
  }
  // GPU time between the timed scopes: host launch gaps (e.g. after the loss and grad-norm
  // reads, which synchronize), allocator work and anything not wrapped.
  Result::Cat untimed;
  untimed.ms = r.profile_total_ms - covered;
  cats.push_back({"untimed", untimed});
  std::sort(cats.begin(), cats.end(),
            [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  auto tflops = [](const Result::Cat& c) { return c.ms > 0 ? c.flops / (c.ms * 1e9) : 0.0; };
  std::ostringstream o;
  o.precision(6);
  o << "{\"name\": \"" << r.name << "-profile\", \"card\": \"" << card << "\", \"attention\": \""
    << ops::attention_impl_name(ops::attention_impl()) << "\", \"batch\": " << r.batch
    << ", \"profile\": {";
  for (size_t i = 0; i < cats.size(); ++i) {
    const Result::Cat& c = cats[i].second;
    o << (i ? ", " : "") << "\"" << cats[i].first << "\": {\"ms\": " << c.ms;
    if (c.flops > 0) o << ", \"tflops\": " << tflops(c);
    o << ", \"calls\": " << c.calls << "}";
  }
  o << "}, \"phase_ms\": {";
  for (auto it = phase_ms.begin(); it != phase_ms.end(); ++it)
    o << (it == phase_ms.begin() ? "" : ", ") << "\"" << it->first << "\": " << it->second;
  o << "}, \"total_ms\": " << r.profile_total_ms << ", \"covered_ms\": " << covered
    << ", \"gemm_ms\": " << gemm_ms
    << ", \"gemm_tflops\": " << (gemm_ms > 0 ? gemm_flops / (gemm_ms * 1e9) : 0.0)
    << ", \"step_ms_unprofiled\": " << r.ms_per_step;
  if (!r.profile_error.empty()) {
    std::string e;
    for (char c : r.profile_error) e += (c == '"' || c == '\\' || c == '\n') ? ' ' : c;
    o << ", \"error\": \"" << e << "\"";
  }
  o << "}";

  std::fprintf(stderr,
               "[profile] %s batch %lld on %s: profiled step %.2f ms (unprofiled %.2f ms)\n",
               r.name.c_str(), (long long)r.batch, card.c_str(), r.profile_total_ms, r.ms_per_step);
  std::fprintf(stderr, "[profile] %-30s %10s %7s %7s %9s %7s\n", "category", "ms", "%", "calls",
               "TFLOP/s", "%peak");
  for (const auto& [name, c] : cats) {
    double pct = r.profile_total_ms > 0 ? 100.0 * c.ms / r.profile_total_ms : 0.0;
    if (c.flops > 0)
      std::fprintf(stderr, "[profile] %-30s %10.3f %7.2f %7lld %9.1f %7.1f\n", name.c_str(), c.ms,
                   pct, (long long)c.calls, tflops(c), 100.0 * tflops(c) / peak_tflops);
    else
      std::fprintf(stderr, "[profile] %-30s %10.3f %7.2f %7lld\n", name.c_str(), c.ms, pct,
                   (long long)c.calls);
  }
  std::fprintf(stderr,
               "[profile] all GEMMs (linears): %.2f ms = %.1f%% of the step, %.1f TFLOP/s\n",
               gemm_ms, r.profile_total_ms > 0 ? 100.0 * gemm_ms / r.profile_total_ms : 0.0,
               gemm_ms > 0 ? gemm_flops / (gemm_ms * 1e9) : 0.0);
  for (const auto& [ph, ms] : phase_ms)
    std::fprintf(stderr, "[profile] phase %s: %.2f ms\n", ph.c_str(), ms);
  std::fprintf(stderr, "[profile] untimed (between scopes): %.2f ms\n", untimed.ms);
  return o.str();
}

std::string json(const Result& r, const std::string& card) {
  std::ostringstream o;
  o.precision(6);
  o << "{\"name\": \"" << r.name << "\", \"attention\": \""
    << ops::attention_impl_name(ops::attention_impl()) << "\", \"card\": \"" << card
    << "\", \"ok\": " << (r.ok ? "true" : "false") << ", \"batch\": " << r.batch
    << ", \"params\": " << r.params << ", \"steps\": " << r.steps
    << ", \"ms_per_step\": " << r.ms_per_step << ", \"images_per_s\": " << r.images_per_s
    << ", \"gflop_per_image\": " << r.gflop_per_image << ", \"tflops\": " << r.tflops
    << ", \"mfu\": " << r.mfu << ", \"peak_mem_gb\": " << r.peak_mem_gb << ", \"loss\": " << r.loss;
  if (!r.error.empty()) {
    std::string e;
    for (char c : r.error) e += (c == '"' || c == '\\') ? ' ' : (c == '\n' ? ' ' : c);
    o << ", \"error\": \"" << e << "\"";
  }
  o << "}";
  return o.str();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, sep))
    if (!x.empty()) v.push_back(x);
  return v;
}

int main_impl(int argc, char** argv) {
  std::string models = "XL,S", json_path, suffix, batches_xl = "256,128,64", batches_s = "256,128";
  int warmup = 2, steps = 5;
  double peak = 989.0;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      RAE_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "--models")
      models = next();
    else if (a == "--batches-xl")
      batches_xl = next();
    else if (a == "--batches-s")
      batches_s = next();
    else if (a == "--steps")
      steps = std::stoi(next());
    else if (a == "--warmup")
      warmup = std::stoi(next());
    else if (a == "--peak-tflops")
      peak = std::stod(next());
    else if (a == "--json")
      json_path = next();
    else if (a == "--attention")
      ops::set_attention_impl(ops::attention_impl_from_name(next()));
    else if (a == "--suffix")
      suffix = next();
    else if (a == "--profile")
      profile = true;
    else if (a == "--help" || a == "-h") {
      std::printf(
          "step_bench_cuda: DiT^DH training-step benchmark on one GPU (bf16).\n"
          "  --models XL,S          models to run (default XL,S)\n"
          "  --batches-xl 256,128   batches to try for XL, the first that fits is used\n"
          "  --batches-s 256,128    the same for S\n"
          "  --steps N --warmup N   timed and warm-up steps (default 5, 2)\n"
          "  --peak-tflops X        peak bf16 TFLOP/s for the MFU (default 989)\n"
          "  --attention auto|flash|gemm   attention kernel\n"
          "  --suffix S             appended to the model names\n"
          "  --json PATH            also write the results as a JSON array\n"
          "  --profile              one extra step timed per op category with CUDA events:\n"
          "                         a \"<name>-profile\" JSON line and a table on stderr\n"
          "  --flops                print the analytic FLOPs and exit (no GPU needed)\n");
      return 0;
    } else if (a == "--flops") {  // print the analytic FLOPs and exit (no GPU needed)
      for (auto m : {"XL", "S"}) {
        Config c = config_for(m);
        std::printf("%s: forward %.1f GFLOP/image, training %.1f GFLOP/image\n", c.name.c_str(),
                    flops_per_image(c) / 1e9, 3 * flops_per_image(c) / 1e9);
      }
      return 0;
    } else
      RAE_THROW(
          "unknown option '", a,
          "' (--models --batches-xl --batches-s --steps --warmup "
          "--peak-tflops --json --attention auto|flash|gemm --suffix --profile --flops --help)");
  }
#ifdef STEP_BENCH_CPU_DRYRUN
  {
    Config c = config_for("S");
    c.name = "dryrun";
    c.body_w = 48, c.body_d = 2, c.body_h = 2, c.head_w = 64, c.head_d = 1, c.head_h = 2;
    c.grid = 4, c.in_ch = 24, c.fourier = 8, c.classes = 10;
    Result r = run_model(c, 3, 1, 2, peak, profile);
    std::printf("%s\n", json(r, "cpu").c_str());
    if (profile) std::printf("%s\n", profile_report(r, "cpu", peak).c_str());
    return 0;
  }
#endif
  if (!cuda_available()) {
    std::printf("{\"error\": \"no CUDA device\"}\n");
    std::fprintf(stderr, "step_bench_cuda: no CUDA device found (this benchmark needs a GPU)\n");
    return 2;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::string card = prop.name;
  std::vector<std::string> out;
  for (const std::string& m : split(models, ',')) {
    Config cfg = config_for(m);
    cfg.name += suffix;
    Result best;
    best.name = cfg.name;
    // The largest batch that fits: try in the given order, stop at the first that runs.
    for (const std::string& bs : split(m == "XL" ? batches_xl : batches_s, ',')) {
      int64_t B = std::stoll(bs);
      try {
        std::fprintf(stderr, "[step_bench] %s batch %lld ...\n", cfg.name.c_str(), (long long)B);
        best = run_model(cfg, B, warmup, steps, peak, profile);
        break;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[step_bench] %s batch %lld failed: %s\n", cfg.name.c_str(),
                     (long long)B, e.what());
        best.batch = B;
        best.error = e.what();
        (void)cudaGetLastError();
        cuda_memory::release_cache();
        // A sticky CUDA error (not an out-of-memory) poisons the context: stop here.
        if (cudaDeviceSynchronize() != cudaSuccess) break;
      }
    }
    cuda_memory::release_cache();
    std::string j = json(best, card);
    std::printf("%s\n", j.c_str());
    out.push_back(j);
    if (profile && best.ok) {
      std::string p = profile_report(best, card, peak);
      std::printf("%s\n", p.c_str());
      out.push_back(p);
    }
    std::fflush(stdout);
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << "[\n";
    for (size_t i = 0; i < out.size(); ++i)
      f << "  " << out[i] << (i + 1 < out.size() ? ",\n" : "\n");
    f << "]\n";
  }
  return 0;
}

}  // namespace
}  // namespace rae

int main(int argc, char** argv) {
  try {
    return rae::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "step_bench_cuda: %s\n", e.what());
    return 1;
  }
}
