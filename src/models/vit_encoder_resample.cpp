#include "models/vit_encoder_resample.h"

#include <algorithm>
#include <cmath>

namespace rae::models {

namespace {

// ---- PyTorch upsample kernels ----

float cubic1(float x, float a) {
  return ((a + 2) * x - (a + 3)) * x * x + 1;
}
float cubic2(float x, float a) {
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}
float aa_bicubic(float x) {
  x = std::fabs(x);
  if (x < 1.0f) return cubic1(x, -0.5f);
  if (x < 2.0f) return cubic2(x, -0.5f);
  return 0.0f;
}

}  // namespace

InterpWeights torch_bicubic_weights(int in, int out, double scale_d, bool antialias) {
  InterpWeights w;
  const float scale = static_cast<float>(scale_d);
  if (!antialias) {
    w.taps = 4;
    w.start.resize(out);
    w.count.assign(out, 4);
    w.weight.resize(static_cast<size_t>(out) * 4);
    w.index.resize(static_cast<size_t>(out) * 4);
    for (int i = 0; i < out; ++i) {
      float real = scale * (i + 0.5f) - 0.5f;
      int idx = std::min(static_cast<int>(std::floor(real)), in - 1);
      float t = std::min(std::max(real - idx, 0.0f), 1.0f);
      const float a = -0.75f;
      float c[4] = {cubic2(t + 1, a), cubic1(t, a), cubic1(1 - t, a), cubic2(2 - t, a)};
      w.start[i] = idx - 1;
      for (int j = 0; j < 4; ++j) {
        w.weight[i * 4 + j] = c[j];
        w.index[i * 4 + j] = std::max(std::min(idx - 1 + j, in - 1), 0);
      }
    }
    return w;
  }
  const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  w.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.start.resize(out);
  w.count.resize(out);
  w.weight.assign(static_cast<size_t>(out) * w.taps, 0.0);
  w.index.assign(static_cast<size_t>(out) * w.taps, 0);
  for (int i = 0; i < out; ++i) {
    float center = scale * (i + 0.5f);
    int xmin = std::max(static_cast<int>(center - support + 0.5f), 0);
    int xsize = std::min(static_cast<int>(center + support + 0.5f), in) - xmin;
    float total = 0;
    std::vector<float> tmp(xsize);
    for (int j = 0; j < xsize; ++j) {
      tmp[j] = aa_bicubic((j + xmin - center + 0.5f) * invscale);
      total += tmp[j];
    }
    for (int j = 0; j < xsize; ++j) {
      w.weight[static_cast<size_t>(i) * w.taps + j] = total != 0 ? tmp[j] / total : tmp[j];
      w.index[static_cast<size_t>(i) * w.taps + j] = xmin + j;
    }
    w.start[i] = xmin;
    w.count[i] = xsize;
  }
  return w;
}

std::vector<float> resample_planar(const std::vector<float>& src, int channels, int h, int w,
                                   const InterpWeights& wy, const InterpWeights& wx) {
  const int oh = static_cast<int>(wy.start.size()), ow = static_cast<int>(wx.start.size());
  std::vector<float> tmp(static_cast<size_t>(channels) * h * ow);
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < h; ++y) {
      const float* s = &src[(static_cast<size_t>(c) * h + y) * w];
      float* d = &tmp[(static_cast<size_t>(c) * h + y) * ow];
      for (int x = 0; x < ow; ++x) {
        float acc = 0;
        for (int j = 0; j < wx.count[x]; ++j)
          acc += s[wx.index[static_cast<size_t>(x) * wx.taps + j]] *
                 static_cast<float>(wx.weight[static_cast<size_t>(x) * wx.taps + j]);
        d[x] = acc;
      }
    }
  std::vector<float> out(static_cast<size_t>(channels) * oh * ow);
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < oh; ++y) {
      float* d = &out[(static_cast<size_t>(c) * oh + y) * ow];
      for (int x = 0; x < ow; ++x) {
        float acc = 0;
        for (int j = 0; j < wy.count[y]; ++j) {
          int sy = wy.index[static_cast<size_t>(y) * wy.taps + j];
          acc += tmp[(static_cast<size_t>(c) * h + sy) * ow + x] *
                 static_cast<float>(wy.weight[static_cast<size_t>(y) * wy.taps + j]);
        }
        d[x] = acc;
      }
    }
  return out;
}

}  // namespace rae::models
