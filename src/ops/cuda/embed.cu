// CUDA embeddings: Gaussian Fourier time features, label tables and patchify/unpatchify.
#include "ops/cuda/common.cuh"
#include "ops/embed.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

// out (B, 2F) = [sin(2 pi t W), cos(2 pi t W)].
__global__ void fourier_kernel(Ptr out, Ptr t, Ptr W, int64_t B, int64_t F) {
  RAE_GRID_LOOP(i, B * F) {
    int64_t b = i / F, f = i - b * F;
    // The angle in double: 2 pi t W reaches hundreds of radians for large W, where F32 would
    // lose the phase.
    double a = 6.283185307179586 * (double)t.ld(b) * (double)W.ld(f);
    out.st(b * 2 * F + f, (float)sin(a));
    out.st(b * 2 * F + F + f, (float)cos(a));
  }
}

__global__ void embed_fwd_kernel(Ptr out, Ptr table, const int32_t* labels, int64_t B, int64_t K,
                                 int64_t C, int* bad) {
  RAE_GRID_LOOP(i, B * C) {
    int64_t b = i / C, c = i - b * C;
    int32_t l = labels[b];
    if (l < 0 || l >= K) {
      *bad = 1;
      continue;
    }
    out.st(i, table.ld((int64_t)l * C + c));
  }
}

// One thread per column walks the batch in order: deterministic, no atomics, and repeated
// labels accumulate correctly.
__global__ void embed_bwd_kernel(Ptr dtable, Ptr dout, const int32_t* labels, int64_t B, int64_t K,
                                 int64_t C) {
  RAE_GRID_LOOP(c, C) {
    for (int64_t b = 0; b < B; ++b) {
      int32_t l = labels[b];
      if (l < 0 || l >= K) continue;
      dtable.add((int64_t)l * C + c, dout.ld(b * C + c));
    }
  }
}

// tokens (B, Hp*Wp, p*p*C) element (b, hi*Wp+wi, (ph*p+pw)*C + c) <-> img (b, c, hi*p+ph, wi*p+pw).
// dir 0: img -> tokens; dir 1: tokens -> img. Indexed by the token element.
__global__ void patch_kernel(Ptr tokens, Ptr img, int64_t B, int64_t C, int64_t H, int64_t W,
                             int64_t p, int dir) {
  int64_t Hp = H / p, Wp = W / p, D = p * p * C, n = B * Hp * Wp * D;
  RAE_GRID_LOOP(i, n) {
    int64_t d = i % D, tok = (i / D) % (Hp * Wp), b = i / (D * Hp * Wp);
    int64_t c = d % C, pw = (d / C) % p, ph = d / (C * p);
    int64_t hi = tok / Wp, wi = tok % Wp;
    int64_t j = ((b * C + c) * H + hi * p + ph) * W + wi * p + pw;
    if (dir == 0)
      tokens.st(i, img.ld(j));
    else
      img.st(j, tokens.ld(i));
  }
}

void check_patch(const Tensor& tokens, const Tensor& img, int64_t p, const char* op) {
  require(tokens, op, "tokens");
  require(img, op, "img");
  RAE_CHECK(img.ndim() == 4, op, ": img must be (B, C, H, W), got ", img.str());
  RAE_CHECK(p > 0 && img.dim(2) % p == 0 && img.dim(3) % p == 0, op, ": image ", img.str(),
            " is not divisible by patch ", p);
  int64_t B = img.dim(0), C = img.dim(1), L = (img.dim(2) / p) * (img.dim(3) / p);
  check_shape(tokens, {B, L, p * p * C}, op, "tokens");
}

}  // namespace

void fourier_features(const Tensor& out, const Tensor& t, const Tensor& W) {
  const char* op = "cuda::fourier_features";
  require(out, op, "out");
  require(t, op, "t");
  require(W, op, "W");
  int64_t B = t.numel(), F = W.numel();
  RAE_CHECK(out.numel() == B * 2 * F, op, ": out ", out.str(), ", expected (", B, ", ", 2 * F, ")");
  if (B * F == 0) return;
  fourier_kernel<<<grid_1d(B * F), 256, 0, cur_stream()>>>(ptr(out, op, "out"), ptr(t, op, "t"),
                                                           ptr(W, op, "W"), B, F);
  RAE_CUDA_LAUNCHED(op);
}

void embedding_forward(const Tensor& out, const Tensor& table, const Tensor& labels) {
  const char* op = "cuda::embedding_forward";
  require(out, op, "out");
  require(table, op, "table");
  require(labels, op, "labels");
  RAE_CHECK(labels.dtype() == DType::I32 && labels.is_cuda() && labels.is_contiguous(), op,
            ": labels must be contiguous i32 on CUDA, got ", labels.str());
  RAE_CHECK(table.ndim() == 2, op, ": table must be (K, C), got ", table.str());
  int64_t K = table.dim(0), C = table.dim(1), B = labels.numel();
  RAE_CHECK(out.numel() == B * C, op, ": out ", out.str(), ", expected (", B, ", ", C, ")");
  if (B * C == 0) return;
  Tensor bad = Tensor::zeros({1}, DType::I32, out.device());
  embed_fwd_kernel<<<grid_1d(B * C), 256, 0, cur_stream()>>>(
      ptr(out, op, "out"), ptr(table, op, "table"), static_cast<const int32_t*>(labels.raw()), B, K,
      C, static_cast<int*>(bad.raw()));
  RAE_CUDA_LAUNCHED(op);
  // Inside a CUDA graph capture no value can come back to the host: the capturing caller
  // (train/graph_step.cpp) checks the labels on the host instead.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  RAE_CUDA_CHECK(cudaStreamIsCapturing(cur_stream(), &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return;
  int h = 0;
  RAE_CUDA_CHECK(cudaMemcpy(&h, bad.raw(), sizeof(int), cudaMemcpyDeviceToHost));
  RAE_CHECK(h == 0, op, ": a label is outside the table's ", K, " rows");
}

void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& labels) {
  const char* op = "cuda::embedding_backward";
  if (!dtable.defined()) return;
  require(dout, op, "dout");
  require(labels, op, "labels");
  RAE_CHECK(labels.dtype() == DType::I32 && labels.is_cuda() && labels.is_contiguous(), op,
            ": labels must be contiguous i32 on CUDA, got ", labels.str());
  RAE_CHECK(dtable.ndim() == 2, op, ": dtable must be (K, C), got ", dtable.str());
  int64_t K = dtable.dim(0), C = dtable.dim(1), B = labels.numel();
  RAE_CHECK(dout.numel() == B * C, op, ": dout ", dout.str(), ", expected (", B, ", ", C, ")");
  if (B * C == 0) return;
  embed_bwd_kernel<<<grid_1d(C, 128), 128, 0, cur_stream()>>>(
      ptr(dtable, op, "dtable"), ptr(dout, op, "dout"), static_cast<const int32_t*>(labels.raw()),
      B, K, C);
  RAE_CUDA_LAUNCHED(op);
}

void patchify(const Tensor& tokens, const Tensor& img, int64_t p) {
  const char* op = "cuda::patchify";
  check_patch(tokens, img, p, op);
  int64_t n = tokens.numel();
  if (n == 0) return;
  patch_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(tokens, op, "tokens"), ptr(img, op, "img"),
                                                     img.dim(0), img.dim(1), img.dim(2), img.dim(3),
                                                     p, 0);
  RAE_CUDA_LAUNCHED(op);
}

void unpatchify(const Tensor& img, const Tensor& tokens, int64_t p) {
  const char* op = "cuda::unpatchify";
  check_patch(tokens, img, p, op);
  int64_t n = tokens.numel();
  if (n == 0) return;
  patch_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(tokens, op, "tokens"), ptr(img, op, "img"),
                                                     img.dim(0), img.dim(1), img.dim(2), img.dim(3),
                                                     p, 1);
  RAE_CUDA_LAUNCHED(op);
}

}  // namespace rae::ops::cuda
