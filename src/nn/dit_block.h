// The LightningDiT / DDT block of the RAE release (LightningDDTBlock): RMSNorm, adaLN-Zero with
// 6 chunks (shift/scale/gate for attention and MLP) from SiLU -> Linear of the condition,
// attention with qkv bias and 2D RoPE, SwiGLU FFN (hidden int(2/3 * 4 * width)).
// The condition is per sample (B, C) in the body and per token (B, T, C) in the DDT head.
#pragma once
#include <string>

#include "nn/arena.h"
#include "nn/layers.h"

namespace rae::nn {

// SwiGLU hidden width of the release: int(2/3 * int(width * mlp_ratio)).
int64_t swiglu_hidden(int64_t width, double mlp_ratio);

struct DiTBlock {
  int64_t width = 0, heads = 0, head_dim = 0, hidden = 0;
  int norm1 = -1, norm2 = -1;
  Linear qkv, proj, w12, w3, ada;

  // What backward needs, filled by forward (tensors live in the step arena).
  struct Saved {
    int64_t B = 0, T = 0;
    bool per_token = false;
    Tensor x_in, cond, cond_act;                      // cond_act = silu(cond)
    Tensor scale_msa, gate_msa, scale_mlp, gate_mlp;  // (R, C) chunks
    Tensor rstd1, h1, qkv, att, lse, y1, x_mid, rstd2, h2, u, g, y2;
  };

  void declare(ParamStore& ps, const std::string& prefix, int64_t width, int64_t heads,
               double mlp_ratio);
  // x_out (B, T, C) from x_in (B, T, C); cond (B, C) or (B, T, C); cos/sin (T, head_dim).
  void forward(const ParamStore& ps, Arena& arena, Saved& s, const Tensor& x_out,
               const Tensor& x_in, const Tensor& cond, const Tensor& cos, const Tensor& sin) const;
  // dx (B, T, C): on entry dL/dx_out, on return dL/dx_in (in place). dcond (cond's shape) +=.
  void backward(const ParamStore& ps, Arena& arena, const Saved& s, const Tensor& dx,
                const Tensor& dcond, const Tensor& cos, const Tensor& sin) const;
};

}  // namespace rae::nn
