// The FID Inception-v3 (see inception.h): architecture table, weight loading with batch-norm
// folding, and the forward, block for block as torch-fidelity's feature_extractor_inceptionv3.py.
#include "models/inception.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "ops/linear.h"
#include "ops/pool.h"
#include "ops/resize.h"

namespace rae::models {

namespace {

constexpr int64_t kFeatures = 2048, kClasses = 1008, kSpatialChannels = 7;
constexpr const char* kBnTensors[] = {"weight", "bias", "running_mean", "running_var"};

int64_t default_batch(Device d) {
  return d.is_cuda() ? 200 : 16;
}

}  // namespace

// ---- architecture --------------------------------------------------------------------------

std::vector<InceptionV3::Conv> InceptionV3::architecture() {
  std::vector<Conv> v;
  // BasicConv2d(in, out, kernel (kh, kw), stride, padding (ph, pw)).
  auto add = [&](const std::string& name, int64_t in, int64_t out, int64_t kh, int64_t kw,
                 int64_t stride = 1, int64_t ph = 0, int64_t pw = 0) {
    Conv c;
    c.name = name;
    c.in = in;
    c.out = out;
    c.kh = kh;
    c.kw = kw;
    c.p.stride_h = c.p.stride_w = stride;
    c.p.pad_h = ph;
    c.p.pad_w = pw;
    c.p.relu = true;
    v.push_back(c);
  };
  add("Conv2d_1a_3x3", 3, 32, 3, 3, 2);
  add("Conv2d_2a_3x3", 32, 32, 3, 3);
  add("Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1);
  add("Conv2d_3b_1x1", 64, 80, 1, 1);
  add("Conv2d_4a_3x3", 80, 192, 3, 3);
  auto block_a = [&](const std::string& m, int64_t in, int64_t pool_features) {
    add(m + ".branch1x1", in, 64, 1, 1);
    add(m + ".branch5x5_1", in, 48, 1, 1);
    add(m + ".branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
    add(m + ".branch3x3dbl_1", in, 64, 1, 1);
    add(m + ".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(m + ".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
    add(m + ".branch_pool", in, pool_features, 1, 1);
  };
  block_a("Mixed_5b", 192, 32);
  block_a("Mixed_5c", 256, 64);
  block_a("Mixed_5d", 288, 64);
  add("Mixed_6a.branch3x3", 288, 384, 3, 3, 2);
  add("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1);
  add("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
  add("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2);
  auto block_c = [&](const std::string& m, int64_t c7) {
    add(m + ".branch1x1", 768, 192, 1, 1);
    add(m + ".branch7x7_1", 768, c7, 1, 1);
    add(m + ".branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    add(m + ".branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    add(m + ".branch7x7dbl_1", 768, c7, 1, 1);
    add(m + ".branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    add(m + ".branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    add(m + ".branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    add(m + ".branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    add(m + ".branch_pool", 768, 192, 1, 1);
  };
  block_c("Mixed_6b", 128);
  block_c("Mixed_6c", 160);
  block_c("Mixed_6d", 160);
  block_c("Mixed_6e", 192);
  add("Mixed_7a.branch3x3_1", 768, 192, 1, 1);
  add("Mixed_7a.branch3x3_2", 192, 320, 3, 3, 2);
  add("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1);
  add("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
  add("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
  add("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2);
  auto block_e = [&](const std::string& m, int64_t in) {
    add(m + ".branch1x1", in, 320, 1, 1);
    add(m + ".branch3x3_1", in, 384, 1, 1);
    add(m + ".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    add(m + ".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    add(m + ".branch3x3dbl_1", in, 448, 1, 1);
    add(m + ".branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
    add(m + ".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    add(m + ".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    add(m + ".branch_pool", in, 192, 1, 1);
  };
  block_e("Mixed_7b", 1280);
  block_e("Mixed_7c", 2048);
  return v;
}

std::vector<std::pair<std::string, Shape>> InceptionV3::parameter_shapes() {
  std::vector<std::pair<std::string, Shape>> v;
  for (const Conv& c : architecture()) {
    v.push_back({c.name + ".conv.weight", Shape{c.out, c.in, c.kh, c.kw}});
    for (const char* t : kBnTensors) v.push_back({c.name + ".bn." + t, Shape{c.out}});
  }
  v.push_back({"fc.weight", Shape{kClasses, kFeatures}});
  v.push_back({"fc.bias", Shape{kClasses}});
  return v;
}

// ---- loading -------------------------------------------------------------------------------

InceptionV3 InceptionV3::load(const std::string& safetensors_path) {
  safetensors::File f = safetensors::load(safetensors_path);
  return from_tensors(f.tensors, safetensors_path);
}

InceptionV3 InceptionV3::from_tensors(const std::map<std::string, Tensor>& tensors,
                                      const std::string& source) {
  InceptionV3 m;
  m.source_name_ = source;
  std::map<std::string, Shape> expected;
  for (const auto& [name, shape] : parameter_shapes()) {
    expected.emplace(name, shape);
    auto it = tensors.find(name);
    RAE_CHECK(it != tensors.end(), source, ": missing tensor '", name,
              "' (expected an FID Inception-v3 converted by tools/convert_inception_weights.py)");
    const Tensor& t = it->second;
    RAE_CHECK(t.shape() == shape, source, ": tensor '", name, "' has shape ", t.shape().str(),
              ", expected ", shape.str());
    RAE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, source, ": tensor '", name,
              "' has dtype ", dtype_name(t.dtype()), ", expected f32");
    m.source_[name] = t.to(Device::cpu());
  }
  for (const auto& kv : tensors) {
    const std::string& name = kv.first;
    const bool counter = name.size() >= 19 && name.ends_with("num_batches_tracked");
    RAE_CHECK(counter || expected.count(name), source, ": unexpected tensor '", name,
              "' (not an FID Inception-v3 parameter)");
  }
  m.convs_ = architecture();
  for (size_t i = 0; i < m.convs_.size(); ++i) m.index_[m.convs_[i].name] = i;
  m.rebuild();
  return m;
}

void InceptionV3::rebuild() {
  // Fold in double on the host, then one copy to the device in dtype_.
  auto as_f64 = [&](const std::string& name) {
    const Tensor& t = source_.at(name);
    return t.dtype() == DType::F64 ? t.clone() : t.cast(DType::F64);
  };
  for (Conv& c : convs_) {
    Tensor w = as_f64(c.name + ".conv.weight");  // (O, C, KH, KW)
    Tensor gamma = as_f64(c.name + ".bn.weight"), beta = as_f64(c.name + ".bn.bias");
    Tensor mean = as_f64(c.name + ".bn.running_mean"), var = as_f64(c.name + ".bn.running_var");
    Tensor wf = Tensor::empty({c.out, c.kh, c.kw, c.in}, DType::F64);
    Tensor bf = Tensor::empty({c.out}, DType::F64);
    const double *src = w.data<double>(), *g = gamma.data<double>(), *b = beta.data<double>();
    const double *mu = mean.data<double>(), *v = var.data<double>();
    double *dw = wf.data<double>(), *db = bf.data<double>();
    for (int64_t o = 0; o < c.out; ++o) {
      const double scale = g[o] / std::sqrt(v[o] + kBatchNormEps);
      db[o] = b[o] - mu[o] * scale;
      for (int64_t ci = 0; ci < c.in; ++ci)
        for (int64_t y = 0; y < c.kh; ++y)
          for (int64_t x = 0; x < c.kw; ++x)
            dw[((o * c.kh + y) * c.kw + x) * c.in + ci] =
                src[((o * c.in + ci) * c.kh + y) * c.kw + x] * scale;
    }
    c.w = (dtype_ == DType::F64 ? wf : wf.cast(dtype_)).to(device_);
    c.b = (dtype_ == DType::F64 ? bf : bf.cast(dtype_)).to(device_);
  }
  const Tensor& fc = source_.at("fc.weight");
  fc_w_ = (fc.dtype() == dtype_ ? fc.clone() : fc.cast(dtype_)).to(device_);
}

void InceptionV3::to(Device device) {
  if (device == device_) return;
  RAE_CHECK(!(device.is_cuda() && dtype_ == DType::F64),
            "InceptionV3: F64 runs on the CPU only; set_dtype(f32) before moving to ",
            device.str());
  device_ = device;
  rebuild();
}

void InceptionV3::set_dtype(DType dtype) {
  RAE_CHECK(dtype == DType::F32 || dtype == DType::F64, "InceptionV3: dtype ", dtype_name(dtype),
            " (f32, or f64 on the CPU)");
  RAE_CHECK(!(dtype == DType::F64 && device_.is_cuda()), "InceptionV3: F64 runs on the CPU only");
  if (dtype == dtype_) return;
  dtype_ = dtype;
  rebuild();
}

void InceptionV3::set_batch_size(int64_t n) {
  RAE_CHECK(n >= 1, "InceptionV3: batch size must be >= 1, got ", n);
  batch_ = n;
}

// ---- forward -------------------------------------------------------------------------------

const InceptionV3::Conv& InceptionV3::conv(const std::string& name) const {
  auto it = index_.find(name);
  RAE_CHECK(it != index_.end(), "InceptionV3: no conv named ", name);
  return convs_[it->second];
}

Tensor InceptionV3::apply(const std::string& name, const Tensor& x, const Tensor& out) const {
  const Conv& c = conv(name);
  Tensor y = out;
  if (!y.defined()) {
    const int64_t oh = ops::conv_out_size(x.dim(1), c.kh, c.p.stride_h, c.p.pad_h);
    const int64_t ow = ops::conv_out_size(x.dim(2), c.kw, c.p.stride_w, c.p.pad_w);
    y = Tensor::empty({x.dim(0), oh, ow, c.out}, dtype_, device_);
  }
  ops::conv2d_forward(y, x, c.w, c.b, c.p);
  return y;
}

Tensor InceptionV3::pool(const Tensor& x, bool is_max, int64_t k, int64_t s, int64_t p,
                         const Tensor& out) const {
  // torch-fidelity's avg pools are F.avg_pool2d(..., count_include_pad=False), TF's rule.
  const auto params = ops::Pool2dParams::square(k, s, p, /*include_pad=*/false);
  Tensor y = out.defined()
                 ? out
                 : Tensor::empty(ops::pool2d_out_shape(x.shape(), params), dtype_, device_);
  if (is_max)
    ops::max_pool2d_forward(y, x, params);
  else
    ops::avg_pool2d_forward(y, x, params);
  return y;
}

namespace {
// Output buffer (N, H, W, C) and its channel slice [start, start + len).
Tensor slice(const Tensor& out, int64_t start, int64_t len) {
  return out.narrow(3, start, len);
}
}  // namespace

// InceptionA: [1x1 (64) | 5x5 (64) | 3x3dbl (96) | avgpool + 1x1 (pool_features)].
Tensor InceptionV3::block_a(const std::string& m, const Tensor& x, int64_t pool_features) const {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2);
  Tensor out = Tensor::empty({N, H, W, 224 + pool_features}, dtype_, device_);
  apply(m + ".branch1x1", x, slice(out, 0, 64));
  apply(m + ".branch5x5_2", apply(m + ".branch5x5_1", x), slice(out, 64, 64));
  Tensor t = apply(m + ".branch3x3dbl_2", apply(m + ".branch3x3dbl_1", x));
  apply(m + ".branch3x3dbl_3", t, slice(out, 128, 96));
  apply(m + ".branch_pool", pool(x, false, 3, 1, 1), slice(out, 224, pool_features));
  return out;
}

// InceptionB: [3x3 stride 2 (384) | 3x3dbl stride 2 (96) | maxpool 3 stride 2 (C)].
Tensor InceptionV3::block_b(const std::string& m, const Tensor& x) const {
  const int64_t N = x.dim(0), C = x.dim(3);
  const int64_t H = ops::conv_out_size(x.dim(1), 3, 2, 0),
                W = ops::conv_out_size(x.dim(2), 3, 2, 0);
  Tensor out = Tensor::empty({N, H, W, 480 + C}, dtype_, device_);
  apply(m + ".branch3x3", x, slice(out, 0, 384));
  Tensor t = apply(m + ".branch3x3dbl_2", apply(m + ".branch3x3dbl_1", x));
  apply(m + ".branch3x3dbl_3", t, slice(out, 384, 96));
  pool(x, true, 3, 2, 0, slice(out, 480, C));
  return out;
}

// InceptionC: [1x1 (192) | 1x7, 7x1 (192) | 7x1, 1x7, 7x1, 1x7 (192) | avgpool + 1x1 (192)].
Tensor InceptionV3::block_c(const std::string& m, const Tensor& x) const {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2);
  Tensor out = Tensor::empty({N, H, W, 768}, dtype_, device_);
  apply(m + ".branch1x1", x, slice(out, 0, 192));
  Tensor t = apply(m + ".branch7x7_2", apply(m + ".branch7x7_1", x));
  apply(m + ".branch7x7_3", t, slice(out, 192, 192));
  Tensor d = apply(m + ".branch7x7dbl_1", x);
  d = apply(m + ".branch7x7dbl_2", d);
  d = apply(m + ".branch7x7dbl_3", d);
  d = apply(m + ".branch7x7dbl_4", d);
  apply(m + ".branch7x7dbl_5", d, slice(out, 384, 192));
  apply(m + ".branch_pool", pool(x, false, 3, 1, 1), slice(out, 576, 192));
  return out;
}

// InceptionD: [1x1, 3x3 stride 2 (320) | 1x1, 1x7, 7x1, 3x3 stride 2 (192) | maxpool (C)].
Tensor InceptionV3::block_d(const std::string& m, const Tensor& x) const {
  const int64_t N = x.dim(0), C = x.dim(3);
  const int64_t H = ops::conv_out_size(x.dim(1), 3, 2, 0),
                W = ops::conv_out_size(x.dim(2), 3, 2, 0);
  Tensor out = Tensor::empty({N, H, W, 512 + C}, dtype_, device_);
  apply(m + ".branch3x3_2", apply(m + ".branch3x3_1", x), slice(out, 0, 320));
  Tensor t = apply(m + ".branch7x7x3_1", x);
  t = apply(m + ".branch7x7x3_2", t);
  t = apply(m + ".branch7x7x3_3", t);
  apply(m + ".branch7x7x3_4", t, slice(out, 320, 192));
  pool(x, true, 3, 2, 0, slice(out, 512, C));
  return out;
}

// InceptionE: [1x1 (320) | 1x1 -> (1x3 | 3x1) (768) | 1x1, 3x3 -> (1x3 | 3x1) (768) |
// pool + 1x1 (192)]; the pool is an average (Mixed_7b) or, in the TF graph's Mixed_7c, a max.
Tensor InceptionV3::block_e(const std::string& m, const Tensor& x, bool max_pool) const {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2);
  Tensor out = Tensor::empty({N, H, W, 2048}, dtype_, device_);
  apply(m + ".branch1x1", x, slice(out, 0, 320));
  Tensor t = apply(m + ".branch3x3_1", x);
  apply(m + ".branch3x3_2a", t, slice(out, 320, 384));
  apply(m + ".branch3x3_2b", t, slice(out, 704, 384));
  Tensor d = apply(m + ".branch3x3dbl_2", apply(m + ".branch3x3dbl_1", x));
  apply(m + ".branch3x3dbl_3a", d, slice(out, 1088, 384));
  apply(m + ".branch3x3dbl_3b", d, slice(out, 1472, 384));
  apply(m + ".branch_pool", pool(x, max_pool, 3, 1, 1), slice(out, 1856, 192));
  return out;
}

void InceptionV3::forward_batch(const Tensor& images, const InceptionFeatures& dst,
                                int64_t row) const {
  const int64_t n = images.dim(0);
  // (x - 128) / 128 after the TF1 resize, as torch-fidelity.
  Tensor x = Tensor::empty({n, kInputSize, kInputSize, 3}, dtype_, device_);
  ops::resize_bilinear_tf1(x, images, 128.0, 128.0);
  x = apply("Conv2d_1a_3x3", x);   // (n, 149, 149, 32)
  x = apply("Conv2d_2a_3x3", x);   // (n, 147, 147, 32)
  x = apply("Conv2d_2b_3x3", x);   // (n, 147, 147, 64)
  x = pool(x, true, 3, 2, 0);      // (n, 73, 73, 64)
  x = apply("Conv2d_3b_1x1", x);   // (n, 73, 73, 80)
  x = apply("Conv2d_4a_3x3", x);   // (n, 71, 71, 192)
  x = pool(x, true, 3, 2, 0);      // (n, 35, 35, 192)
  x = block_a("Mixed_5b", x, 32);  // 256
  x = block_a("Mixed_5c", x, 64);  // 288
  x = block_a("Mixed_5d", x, 64);  // 288
  x = block_b("Mixed_6a", x);      // (n, 17, 17, 768)
  x = block_c("Mixed_6b", x);
  x = block_c("Mixed_6c", x);
  x = block_c("Mixed_6d", x);
  // sFID: Mixed_6d.branch1x1 (channels [0, 192) of the block output), first 7 channels.
  Tensor spatial = x.narrow(3, 0, kSpatialChannels).clone();  // (n, 17, 17, 7)
  RAE_CHECK(spatial.dim(1) == 17 && spatial.dim(2) == 17, "InceptionV3: spatial features ",
            spatial.shape().str(), ", expected 17 x 17");
  dst.spatial.narrow(0, row, n).copy_from(spatial.view({n, 17 * 17 * kSpatialChannels}));
  x = block_c("Mixed_6e", x);
  x = block_d("Mixed_7a", x);         // (n, 8, 8, 1280)
  x = block_e("Mixed_7b", x, false);  // (n, 8, 8, 2048)
  x = block_e("Mixed_7c", x, true);   // (n, 8, 8, 2048)
  Tensor pooled = Tensor::empty({n, 1, 1, kFeatures}, dtype_, device_);
  ops::adaptive_avg_pool2d_forward(pooled, x);
  Tensor pool_rows = dst.pool.narrow(0, row, n);
  pool_rows.copy_from(pooled.view({n, kFeatures}));
  // logits_unbiased: pool @ fc.weight^T, no bias.
  ops::linear_forward(dst.logits.narrow(0, row, n), pool_rows, fc_w_, Tensor());
}

InceptionFeatures InceptionV3::forward(const Tensor& images) {
  const char* op = "InceptionV3::forward";
  RAE_CHECK(
      images.defined() && images.dtype() == DType::U8 && images.ndim() == 4 && images.dim(3) == 3,
      op, ": images must be u8 (N, H, W, 3), got ", images.defined() ? images.str() : "none");
  RAE_CHECK(images.dim(1) >= 1 && images.dim(2) >= 1, op, ": empty images ", images.str());
  const int64_t N = images.dim(0);
  InceptionFeatures f;
  f.pool = Tensor::empty({N, kFeatures}, dtype_, device_);
  f.logits = Tensor::empty({N, kClasses}, dtype_, device_);
  f.spatial = Tensor::empty({N, 17 * 17 * kSpatialChannels}, dtype_, device_);
  const Tensor src = images.is_contiguous() ? images : images.clone();
  const int64_t batch = batch_ > 0 ? batch_ : default_batch(device_);
  for (int64_t s = 0; s < N; s += batch) {
    const int64_t n = std::min(batch, N - s);
    forward_batch(src.narrow(0, s, n).to(device_), f, s);
  }
  return f;
}

}  // namespace rae::models
