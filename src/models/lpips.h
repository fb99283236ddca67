// LPIPS with the VGG16 feature network (Zhang et al. 2018; the lpips package's LPIPS(net="vgg")
// and the RAE release's src/disc/lpips.py, which is the same network): a frozen perceptual loss
// with forward AND backward w.r.t. the input image (weights never get gradients).
//
//   scaling layer   x' = (x - shift) / scale per channel, shift (-.030, -.088, -.188),
//                   scale (.458, .448, .450); images in [-1, 1]
//   VGG16 features  torchvision's vgg16().features[0:30]: 13 conv3x3 (padding 1) + ReLU, max
//                   pool 2x2 before conv 3, 5, 8 and 11; taps after relu1_2, relu2_2, relu3_3,
//                   relu4_3, relu5_3 (64, 128, 256, 512, 512 channels)
//   per tap k       n = f / (||f||_channels + 1e-10), d = lin_k((n_x - n_y)^2) (a 1x1 conv to one
//                   channel, no bias, non-negative trained weights), spatial mean
//   value           sum over taps, mean over the batch (the release's lpips(...) with
//                   reduction "mean"); ops::lpips_distance computes one tap's term.
//
// Layout: images (B, H, W, 3) channels last; activations in the arena's activation dtype (the
// weights are kept in that dtype too). Weights: a file written by tools/convert_lpips_weights.py
// (torchvision's "features.N.weight/bias" (O, C, 3, 3) and lpips' "lin{k}.model.1.weight"
// (1, C, 1, 1), names and layouts as published) or "random": synthetic weights from the formula
// of models/synthetic_weights.h (He-uniform convolutions, small biases, positive lin weights),
// for tests and the demo. Nothing is downloaded.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/arena.h"
#include "tensor/tensor.h"

namespace rae::models {

class Lpips {
 public:
  static constexpr int kTaps = 5;
  // `source`: "random" or a converted weights file (.safetensors).
  static Lpips open(const std::string& source, Device device, DType dtype = DType::F32);
  // From tensors named and shaped as the converted file (PyTorch layouts).
  static Lpips from_tensors(const std::map<std::string, Tensor>& tensors, const std::string& where,
                            Device device, DType dtype);
  // The tensors of "random" (also written by the goldens' numpy side).
  static std::map<std::string, Tensor> synthetic_tensors();
  // Names and PyTorch shapes of every tensor of the network.
  static std::vector<std::pair<std::string, Shape>> parameter_shapes();

  // x (B, H, W, 3): the image the gradient is for (the reconstruction); y: the real image; both
  // in [-1, 1], H, W >= 16 (four poolings). Returns the batch mean of LPIPS(x, y) and saves, in
  // `arena`, what backward needs (the arena must not be reset in between).
  double forward(nn::Arena& arena, const Tensor& x, const Tensor& y);
  // dx (B, H, W, 3) += scale * d(value)/dx of the last forward.
  void backward(nn::Arena& arena, const Tensor& dx, double scale);

  const std::string& source() const { return source_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

 private:
  struct Conv {
    Tensor w, b;  // (O, 3, 3, C) channels last, (O)
    bool pool_before = false;
    int tap = -1;  // 0..4 when its ReLU output is an LPIPS tap
  };
  // One image batch through the network. save: every conv's input and ReLU output are kept
  // (backward); else only the taps (ping-pong scratch for the rest).
  struct Pass {
    std::vector<Tensor> in, out;      // per conv: its input (after pooling), its ReLU output
    std::vector<Tensor> pooled_from;  // per conv with pool_before: the pool's input
    Tensor taps[kTaps];
  };
  Pass run(nn::Arena& arena, const Tensor& x, bool save) const;

  std::vector<Conv> convs_;
  Tensor lin_[kTaps];  // (C_k)
  Device device_ = Device::cpu();
  DType dtype_ = DType::F32;
  std::string source_;
  Pass saved_x_, saved_y_;  // the last forward's passes (x with every activation)
};

}  // namespace rae::models
