#include "models/lpips.h"

#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/synthetic_weights.h"
#include "ops/conv.h"
#include "ops/image.h"
#include "ops/loss.h"
#include "ops/pool.h"
#include "ops/relu.h"

namespace rae::models {

namespace {

// torchvision's vgg16().features: the index of each conv, its channels, whether a max pool
// precedes it and which LPIPS tap its ReLU output is.
struct ConvSpec {
  int index, in, out;
  bool pool_before;
  int tap;
};
const ConvSpec kVgg[] = {
    {0, 3, 64, false, -1},    {2, 64, 64, false, 0},    {5, 64, 128, true, -1},
    {7, 128, 128, false, 1},  {10, 128, 256, true, -1}, {12, 256, 256, false, -1},
    {14, 256, 256, false, 2}, {17, 256, 512, true, -1}, {19, 512, 512, false, -1},
    {21, 512, 512, false, 3}, {24, 512, 512, true, -1}, {26, 512, 512, false, -1},
    {28, 512, 512, false, 4},
};
const int kTapChannels[Lpips::kTaps] = {64, 128, 256, 512, 512};
const double kShift[3] = {-.030, -.088, -.188}, kScale[3] = {.458, .448, .450};

std::string weight_name(int index) {
  return "features." + std::to_string(index) + ".weight";
}
std::string bias_name(int index) {
  return "features." + std::to_string(index) + ".bias";
}
std::string lin_name(int k) {
  return "lin" + std::to_string(k) + ".model.1.weight";
}

// (O, C, KH, KW) -> (O, KH, KW, C).
Tensor to_channels_last(const Tensor& w) {
  const int64_t O = w.dim(0), C = w.dim(1), KH = w.dim(2), KW = w.dim(3);
  Tensor src = w.to(Device::cpu()).cast(DType::F32);
  Tensor out = Tensor::empty({O, KH, KW, C});
  const float* s = src.data<float>();
  float* d = out.data<float>();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < KH * KW; ++i)
        d[(o * KH * KW + i) * C + c] = s[(o * C + c) * KH * KW + i];
  return out;
}

const ops::Pool2dParams kPool = ops::Pool2dParams::square(2);
const ops::Conv2dParams kConv{1, 1, 1, 1, false};

}  // namespace

std::vector<std::pair<std::string, Shape>> Lpips::parameter_shapes() {
  std::vector<std::pair<std::string, Shape>> v;
  for (const ConvSpec& c : kVgg) {
    v.push_back({weight_name(c.index), {c.out, c.in, 3, 3}});
    v.push_back({bias_name(c.index), {c.out}});
  }
  for (int k = 0; k < kTaps; ++k) v.push_back({lin_name(k), {1, kTapChannels[k], 1, 1}});
  return v;
}

std::map<std::string, Tensor> Lpips::synthetic_tensors() {
  std::map<std::string, Tensor> m;
  for (const auto& [name, shape] : parameter_shapes()) {
    if (name.rfind("lin", 0) == 0)
      m[name] = synthetic_tensor(name, shape, 1.0, 0.05);  // positive, as trained lin weights
    else if (shape.size() == 4)
      m[name] = synthetic_tensor(name, shape, -1.0, std::sqrt(6.0 / (shape[1] * 9.0)));
    else
      m[name] = synthetic_tensor(name, shape, -1.0, 0.05);
  }
  return m;
}

Lpips Lpips::from_tensors(const std::map<std::string, Tensor>& t, const std::string& where,
                          Device device, DType dtype) {
  Lpips l;
  l.device_ = device;
  l.dtype_ = dtype;
  l.source_ = where;
  auto get = [&](const std::string& name, const Shape& shape) {
    auto it = t.find(name);
    RAE_CHECK(it != t.end(), "LPIPS weights ", where, ": missing tensor '", name, "'");
    RAE_CHECK(it->second.shape() == shape, "LPIPS weights ", where, ": tensor '", name,
              "' has shape ", it->second.shape().str(), ", expected ", shape.str());
    return it->second;
  };
  auto place = [&](const Tensor& w) { return w.to(Device::cpu()).cast(dtype).to(device); };
  for (const ConvSpec& c : kVgg) {
    Conv cv;
    cv.w = place(to_channels_last(get(weight_name(c.index), {c.out, c.in, 3, 3})));
    cv.b = place(get(bias_name(c.index), {c.out}).to(Device::cpu()).cast(DType::F32));
    cv.pool_before = c.pool_before;
    cv.tap = c.tap;
    l.convs_.push_back(cv);
  }
  for (int k = 0; k < kTaps; ++k) {
    Tensor w = get(lin_name(k), {1, kTapChannels[k], 1, 1}).to(Device::cpu()).cast(DType::F32);
    const float* p = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i)
      RAE_CHECK(std::isfinite(p[i]), "LPIPS weights ", where, ": '", lin_name(k),
                "' has a non-finite value");
    l.lin_[k] = place(w.view({kTapChannels[k]}));
  }
  return l;
}

Lpips Lpips::open(const std::string& source, Device device, DType dtype) {
  if (source == "random") return from_tensors(synthetic_tensors(), "random", device, dtype);
  safetensors::File f = safetensors::load(source);
  return from_tensors(f.tensors, source, device, dtype);
}

Lpips::Pass Lpips::run(nn::Arena& A, const Tensor& x, bool save) const {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2);
  RAE_CHECK(x.ndim() == 4 && x.dim(3) == 3 && H >= 16 && W >= 16,
            "LPIPS: images must be (B, H, W, 3) with H, W >= 16, got ", x.str());
  Pass p;
  Tensor h = A.empty({B, H, W, 3});
  std::vector<double> scale(3), shift(3);
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0 / kScale[c];
    shift[c] = -kShift[c] / kScale[c];
  }
  ops::channel_affine_forward(h, x, scale, shift);
  // Scratch for the activations that a non-saving pass does not keep (largest: the first map).
  Tensor scratch[2];
  if (!save) {
    scratch[0] = A.empty({B * H * W * 64});
    scratch[1] = A.empty({B * H * W * 64});
  }
  int flip = 0;
  auto fresh = [&](const Shape& s, bool keep) {
    if (save || keep) return A.empty(s);
    Tensor t = scratch[flip].narrow(0, 0, s.numel()).view(s);
    flip ^= 1;
    return t;
  };
  int64_t h_ = H, w_ = W;
  for (const Conv& cv : convs_) {
    Tensor in = h;
    if (cv.pool_before) {
      if (save) p.pooled_from.push_back(h);
      h_ /= 2;
      w_ /= 2;
      in = fresh({B, h_, w_, h.dim(3)}, false);
      ops::max_pool2d_forward(in, h, kPool);
    } else if (save) {
      p.pooled_from.push_back(Tensor());
    }
    const int64_t O = cv.w.dim(0);
    Tensor out = fresh({B, h_, w_, O}, cv.tap >= 0);
    ops::conv2d_forward(out, in, cv.w, cv.b, kConv);
    ops::relu_forward(out, out);
    if (save) {
      p.in.push_back(in);
      p.out.push_back(out);
    }
    if (cv.tap >= 0) p.taps[cv.tap] = out;
    h = out;
  }
  return p;
}

double Lpips::forward(nn::Arena& A, const Tensor& x, const Tensor& y) {
  RAE_CHECK(x.shape() == y.shape(), "LPIPS: x ", x.str(), " and y ", y.str(), " differ");
  saved_y_ = run(A, y, false);
  saved_x_ = run(A, x, true);
  double v = 0;
  for (int k = 0; k < kTaps; ++k)
    v += ops::lpips_distance_forward(saved_x_.taps[k], saved_y_.taps[k], lin_[k]);
  return v;
}

void Lpips::backward(nn::Arena& A, const Tensor& dx, double scale) {
  const Pass& p = saved_x_;
  RAE_CHECK(!p.in.empty(), "LPIPS::backward without a forward");
  // Four buffers of the largest map (the first conv's output) serve every layer in turn: the
  // gradient at the ReLU output and at the conv input alternate, plus scratch for the
  // pre-activation and for the pooled map's gradient (rather than fresh buffers per layer).
  const int64_t largest = p.out[0].numel();
  Tensor buf[4];
  for (Tensor& b : buf) b = A.empty({largest});
  auto view = [](const Tensor& b, const Shape& s) {
    Tensor t = b.narrow(0, 0, s.numel()).view(s);
    t.zero_();
    return t;
  };
  int cur = 0;  // buf[cur] holds the gradient at the current conv's ReLU output
  Tensor d_out = view(buf[cur], p.out.back().shape());
  for (int i = static_cast<int>(convs_.size()) - 1; i >= 0; --i) {
    const Conv& cv = convs_[i];
    const Tensor& out = p.out[i];
    if (cv.tap >= 0)
      ops::lpips_distance_backward(d_out, out, saved_y_.taps[cv.tap], lin_[cv.tap], 1e-10, scale);
    // ReLU in place: its output's sign is the input's.
    Tensor d_pre = view(buf[2], out.shape());
    ops::relu_backward(d_pre, d_out, out);
    const int nxt = 1 - cur;
    Tensor d_in = view(cv.pool_before ? buf[3] : buf[nxt], p.in[i].shape());
    ops::conv2d_backward(d_in, Tensor(), Tensor(), d_pre, p.in[i], cv.w, kConv);
    if (cv.pool_before) {
      Tensor d_prev = view(buf[nxt], p.pooled_from[i].shape());
      ops::max_pool2d_backward(d_prev, d_in, p.pooled_from[i], kPool);
      d_in = d_prev;
    }
    d_out = d_in;
    cur = nxt;
  }
  // d_out is now the gradient of the scaled image: undo the scaling layer.
  std::vector<double> s(3);
  for (int c = 0; c < 3; ++c) s[c] = 1.0 / kScale[c];
  ops::channel_affine_backward(dx, d_out, s);
}

}  // namespace rae::models
