// The FID Inception-v3: torch-fidelity's FeatureExtractorInceptionV3 ("inception-v3-compat"),
// the PyTorch port of the TF graph (classify_image_graph_def.pb, 2015-12-05) that the ADM
// evaluation suite, pytorch-fid and the RAE release score with. CPU and CUDA, forward only.
//
// Input: uint8 images (N, H, W, 3), any size, on any device. As torch-fidelity: resized to
// 299 x 299 with TF1's bilinear resize (ops/resize.h, bit-identical to its
// interpolate_bilinear_2d_like_tensorflow1x), normalised (x - 128) / 128, then the network.
// Outputs (on the model's device; F32, or F64 in F64 mode):
//   pool    (N, 2048)  the "2048" / pool_3 features FID, KID and precision/recall use
//   logits  (N, 1008)  "logits_unbiased" = pool @ fc.weight^T WITHOUT the bias: what
//                      torch-fidelity's Inception Score uses (its default feature for "isc") and
//                      what the ADM suite's softmax is computed from (it multiplies pool_3 by
//                      the softmax/logits MatMul's weight, no bias)
//   spatial (N, 2023)  the ADM suite's sFID features: TF's "mixed_6/conv:0" first 7 channels,
//                      flattened in TF's NHWC order (h, w, c) = (17, 17, 7). mixed_6/conv is
//                      torch-fidelity's Mixed_6d.branch1x1 output after its ReLU (TF's mixed,
//                      mixed_1, ... mixed_10 are Mixed_5b, 5c, 5d, 6a, 6b, 6c, 6d, 6e, 7a, 7b,
//                      7c; torch-fidelity's TF-to-PyTorch weight map names mixed_6/conv ->
//                      Mixed_6d.branch1x1; the TF node named by a scope is the scope's ReLU).
// Weights: a safetensors file with torch-fidelity's parameter names and PyTorch layouts, as
// tools/convert_inception_weights.py writes it from the published .pth. Batch norm (eps 0.001)
// is folded into each convolution at load time (w * gamma / sqrt(var + eps), beta - mean * that
// scale, computed in double) and weights are permuted to channels last; each conv then runs as
// one conv2d with bias and fused ReLU. Nothing is downloaded.
// Layout inside: channels last (NHWC); every Inception block writes its branches straight into
// channel slices of its output (no concat copies).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ops/conv.h"
#include "tensor/tensor.h"

namespace rae::models {

struct InceptionFeatures {
  Tensor pool;     // (N, 2048)
  Tensor logits;   // (N, 1008)
  Tensor spatial;  // (N, 2023) = 7 x 17 x 17 in ADM (h, w, c) order
};

class InceptionV3 {
 public:
  static constexpr int64_t kInputSize = 299;
  static constexpr double kBatchNormEps = 0.001;

  // From a converted safetensors file; errors name the file and the tensor.
  static InceptionV3 load(const std::string& safetensors_path);
  // From tensors named as torch-fidelity's state dict (CPU, F32 or F64); `source` names them in
  // errors. num_batches_tracked entries are ignored; any other unknown name is an error.
  static InceptionV3 from_tensors(const std::map<std::string, Tensor>& tensors,
                                  const std::string& source);
  // torch-fidelity's parameter names and PyTorch shapes (num_batches_tracked excluded).
  static std::vector<std::pair<std::string, Shape>> parameter_shapes();
  // Pseudo-random weights from a fixed formula (inception_synthetic.cpp; the parity golden's
  // generator, tests/reference/make_inception_golden.py, gives torch-fidelity's module the same
  // values), named as parameter_shapes(), F32 on the CPU. For tests and benchmarks: a network
  // with these weights scores nothing meaningful.
  static std::map<std::string, Tensor> synthetic_tensors();

  void to(Device device);
  // F32 (default, both backends) or F64 (CPU only: the tests' exact-arithmetic reference).
  void set_dtype(DType dtype);
  // Images per internal batch (default 16 on the CPU, 200 on CUDA).
  void set_batch_size(int64_t n);
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

  // images (N, H, W, 3) U8, any device; batched internally. Results on device().
  InceptionFeatures forward(const Tensor& images);

 private:
  struct Conv {
    std::string name;  // torch-fidelity's module path, e.g. "Mixed_6d.branch1x1"
    int64_t in = 0, out = 0, kh = 1, kw = 1;
    ops::Conv2dParams p;
    Tensor w, b;  // folded, (out, kh, kw, in) and (out), on device_ in dtype_
  };

  static std::vector<Conv> architecture();
  void rebuild();  // folds batch norm from source_ into convs_ in dtype_ on device_
  const Conv& conv(const std::string& name) const;
  // Runs conv `name` (+ bias + ReLU) on x; into `out` (a channel slice) when given.
  Tensor apply(const std::string& name, const Tensor& x, const Tensor& out = Tensor()) const;
  Tensor pool(const Tensor& x, bool is_max, int64_t k, int64_t s, int64_t p,
              const Tensor& out = Tensor()) const;
  Tensor block_a(const std::string& m, const Tensor& x, int64_t pool_features) const;
  Tensor block_b(const std::string& m, const Tensor& x) const;
  Tensor block_c(const std::string& m, const Tensor& x) const;
  Tensor block_d(const std::string& m, const Tensor& x) const;
  Tensor block_e(const std::string& m, const Tensor& x, bool max_pool) const;
  // One batch: images (n, H, W, 3) U8 on device_ -> features written into rows of `dst`.
  void forward_batch(const Tensor& images, const InceptionFeatures& dst, int64_t row) const;

  std::vector<Conv> convs_;
  std::map<std::string, size_t> index_;
  Tensor fc_w_;                           // (1008, 2048) on device_ in dtype_
  std::map<std::string, Tensor> source_;  // the file's tensors (CPU, PyTorch layouts)
  std::string source_name_;
  Device device_ = Device::cpu();
  DType dtype_ = DType::F32;
  int64_t batch_ = 0;  // 0: the device default
};

}  // namespace rae::models
