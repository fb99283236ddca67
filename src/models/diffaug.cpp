#include "models/diffaug.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "ops/diffaug.h"
#include "ops/elementwise.h"

namespace rae::models {

namespace {

// Python's round() of a double: half to even (std::nearbyint in the default rounding mode).
int64_t py_round(double v) {
  return static_cast<int64_t>(std::nearbyint(v));
}

constexpr uint64_t kFlagIndex = uint64_t(1) << 62;  // the flags' stream, apart from sample ids

}  // namespace

DiffAugParams DiffAugParams::to(Device device) const {
  DiffAugParams p = *this;
  p.shifts = shifts.to(device);
  p.factors = factors.to(device);
  p.boxes = boxes.to(device);
  return p;
}

DiffAugParams diffaug_params(const std::vector<float>& u, int64_t B, int64_t H, int64_t W,
                             bool translate, bool color, bool cutout, double cutout_ratio) {
  RAE_CHECK(static_cast<int64_t>(u.size()) == 7 * B, "diffaug_params: ", u.size(), " uniforms for ",
            B, " samples");
  DiffAugParams p;
  p.translate = translate;
  p.color = color;
  p.cutout = cutout;
  p.shifts = Tensor::empty({B, 2}, DType::I32);
  p.factors = Tensor::empty({B, 3}, DType::F32);
  p.boxes = Tensor::empty({B, 4}, DType::I32);
  const int64_t dh = py_round(H * 0.125), dw = py_round(W * 0.125);
  const int64_t ch = py_round(H * cutout_ratio), cw = py_round(W * cutout_ratio);
  for (int64_t b = 0; b < B; ++b) {
    const float* r = u.data() + 7 * b;
    int32_t* s = p.shifts.data<int32_t>() + 2 * b;
    s[0] = static_cast<int32_t>(std::floor(r[0] * static_cast<float>(2 * dh + 1)) - dh);
    s[1] = static_cast<int32_t>(std::floor(r[1] * static_cast<float>(2 * dw + 1)) - dw);
    float* f = p.factors.data<float>() + 3 * b;
    f[0] = r[2] - 0.5f;
    f[1] = r[3] * 2.0f;
    f[2] = r[4] + 0.5f;
    int32_t* q = p.boxes.data<int32_t>() + 4 * b;
    auto span = [](float rv, int64_t size, int64_t c, int32_t* lo, int32_t* hi) {
      if (c <= 0) {
        *lo = *hi = 0;  // the release's empty index grid: nothing cut
        return;
      }
      const int64_t off =
          static_cast<int64_t>(std::floor(rv * static_cast<float>(size + (1 - c % 2))));
      const int64_t a = off - c / 2, z = a + c - 1;
      *lo = static_cast<int32_t>(std::clamp<int64_t>(a, 0, size - 1));
      *hi = static_cast<int32_t>(std::clamp<int64_t>(z, 0, size - 1) + 1);
    };
    span(r[5], H, ch, &q[0], &q[1]);
    span(r[6], W, cw, &q[2], &q[3]);
  }
  return p;
}

DiffAugParams draw_diffaug(const DiffAugConfig& cfg, uint64_t step, int call, const Tensor& ids,
                           int64_t H, int64_t W) {
  RAE_CHECK(ids.dtype() == DType::I64 && ids.ndim() == 1 && !ids.is_cuda(),
            "draw_diffaug: ids must be host I64 (B), got ", ids.str());
  const int64_t B = ids.dim(0);
  const rng::Key fk{cfg.seed, rng::Purpose::DiffAug, step,
                    kFlagIndex + static_cast<uint64_t>(call)};
  // torch.rand(3) <= p; p < 1e-6 turns DiffAug off (the release's early return).
  const bool on = cfg.prob >= 1e-6;
  const bool trans = on && rng::uniform_at(fk, 0) <= cfg.prob;
  const bool color = on && rng::uniform_at(fk, 1) <= cfg.prob;
  const bool cut = on && cfg.prob > 0 && rng::uniform_at(fk, 2) <= cfg.prob;
  std::vector<float> u(static_cast<size_t>(7 * B));
  for (int64_t b = 0; b < B; ++b) {
    const rng::Key k{cfg.seed, rng::Purpose::DiffAug, step,
                     static_cast<uint64_t>(ids.data<int64_t>()[b])};
    for (int j = 0; j < 7; ++j) u[7 * b + j] = rng::uniform_at(k, 8 * call + j);
  }
  return diffaug_params(u, B, H, W, trans, color, cut, cfg.cutout);
}

void diffaug_forward(nn::Arena& A, const Tensor& out, const Tensor& x, const DiffAugParams& p) {
  Tensor cur = x;
  auto stage = [&](bool last) { return last ? out : A.empty(x.shape(), x.dtype()); };
  const bool any_after_t = p.color || p.cutout;
  if (p.translate) {
    Tensor t = stage(!any_after_t);
    ops::diffaug_translate_forward(t, cur, p.shifts);
    cur = t;
  }
  if (p.color) {
    Tensor t = stage(!p.cutout);
    ops::diffaug_color_forward(t, cur, p.factors);
    cur = t;
  }
  if (p.cutout) {
    ops::diffaug_cutout_forward(out, cur, p.boxes);
    cur = out;
  }
  if (!p.translate && !p.color && !p.cutout) Tensor(out).copy_from(x);
}

void diffaug_backward(nn::Arena& A, const Tensor& dx, const Tensor& dout, const DiffAugParams& p) {
  Tensor g = dout;
  auto fresh = [&]() { return A.zeros(dout.shape(), dout.dtype()); };
  if (p.cutout) {
    Tensor t = (p.color || p.translate) ? fresh() : dx;
    ops::diffaug_cutout_backward(t, g, p.boxes);
    g = t;
  }
  if (p.color) {
    Tensor t = p.translate ? fresh() : dx;
    ops::diffaug_color_backward(t, g, p.factors);
    g = t;
  }
  if (p.translate) {
    ops::diffaug_translate_backward(dx, g, p.shifts);
    g = dx;
  }
  if (!p.translate && !p.color && !p.cutout) ops::add_(dx, dout);
}

}  // namespace rae::models
