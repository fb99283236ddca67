// CPU embeddings: 2D sin-cos positions, Gaussian Fourier features, label tables, patchify.
#include "ops/embed.h"

#include <cmath>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {
inline double load(const Tensor& t, int64_t i) {
  return t.dtype() == DType::F64 ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
}
}  // namespace

void sincos_pos_embed_2d(const Tensor& out, int64_t grid_h, int64_t grid_w) {
  // The release's get_2d_sincos_pos_embed (float64, cast at the end): the grid is
  // meshgrid(w, h), so the first half of each row encodes the column (w) coordinate and the
  // second half the row (h); each half is [sin(pos * omega) | cos(pos * omega)] with
  // omega_k = 1 / 10000^(k / (C / 4)), k < C / 4.
  const int64_t C = out.dim(1), half = C / 2, quarter = C / 4;
  std::vector<double> omega(quarter);
  for (int64_t k = 0; k < quarter; ++k)
    omega[k] = 1.0 / std::pow(10000.0, static_cast<double>(k) / (static_cast<double>(half) / 2.0));
  float_dispatch(out.dtype(), "sincos_pos_embed_2d", [&](auto tag) {
    using T = decltype(tag);
    T* p = ptr<T>(out);
    for (int64_t i = 0; i < grid_h; ++i) {
      for (int64_t j = 0; j < grid_w; ++j) {
        T* r = p + (i * grid_w + j) * C;
        for (int64_t k = 0; k < quarter; ++k) {
          const double aw = static_cast<double>(j) * omega[k],
                       ah = static_cast<double>(i) * omega[k];
          r[k] = static_cast<T>(std::sin(aw));
          r[quarter + k] = static_cast<T>(std::cos(aw));
          r[half + k] = static_cast<T>(std::sin(ah));
          r[half + quarter + k] = static_cast<T>(std::cos(ah));
        }
      }
    }
  });
}

void fourier_features(const Tensor& out, const Tensor& t, const Tensor& W) {
  float_dispatch(out.dtype(), "fourier_features", [&](auto tag) {
    using T = decltype(tag);
    T* o = ptr<T>(out);
    const int64_t B = t.dim(0), F = W.dim(0);
    const T two_pi_1 = T(2), pi = static_cast<T>(M_PI);
    parallel_blocks(B, row_grain(2 * F), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T tb = static_cast<T>(load(t, b));
        T* r = o + b * 2 * F;
        for (int64_t k = 0; k < F; ++k) {
          // release order: t * W * 2 * pi, in the working precision
          const T a = tb * static_cast<T>(load(W, k)) * two_pi_1 * pi;
          r[k] = std::sin(a);
          r[F + k] = std::cos(a);
        }
      }
    });
  });
}

void embedding_forward(const Tensor& out, const Tensor& table, const Tensor& labels) {
  float_dispatch(table.dtype(), "embedding_forward", [&](auto tag) {
    using T = decltype(tag);
    const int32_t* lab = ptr<int32_t>(labels);
    const int64_t K = table.dim(0), C = table.dim(1), B = labels.dim(0);
    for (int64_t b = 0; b < B; ++b)
      RAE_CHECK(lab[b] >= 0 && lab[b] < K, "embedding_forward: label ", lab[b], " at index ", b,
                " is outside the table of ", K, " rows");
    const T* tp = ptr<T>(table);
    Rows<T> o = rows_of<T>(out);
    parallel_blocks(B, row_grain(C), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) std::copy(tp + lab[b] * C, tp + (lab[b] + 1) * C, o.row(b));
    });
  });
}

void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& labels) {
  float_dispatch(dtable.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    const int32_t* lab = ptr<int32_t>(labels);
    const int64_t K = dtable.dim(0), C = dtable.dim(1), B = labels.dim(0);
    T* g = ptr<T>(dtable);
    Rows<T> d = rows_of<T>(dout);
    // sequential over samples (labels repeat), so the sum order is fixed
    for (int64_t b = 0; b < B; ++b) {
      RAE_CHECK(lab[b] >= 0 && lab[b] < K, "embedding_backward: label ", lab[b], " at index ", b,
                " is outside the table of ", K, " rows");
      const T* r = d.row(b);
      T* gr = g + lab[b] * C;
      for (int64_t j = 0; j < C; ++j) gr[j] += r[j];
    }
  });
}

namespace {
// tokens (B, Hp*Wp, p*p*C) <-> img (B, C, H, W), token channel (ph, pw, c).
template <typename T>
void patch_copy(T* tokens, T* img, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p,
                bool to_tokens) {
  const int64_t Hp = H / p, Wp = W / p, tc = p * p * C;
  parallel_blocks(B * Hp, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / Hp, hi = r % Hp;
      for (int64_t wi = 0; wi < Wp; ++wi) {
        T* tok = tokens + (b * Hp * Wp + hi * Wp + wi) * tc;
        for (int64_t ph = 0; ph < p; ++ph)
          for (int64_t pw = 0; pw < p; ++pw)
            for (int64_t c = 0; c < C; ++c) {
              T& pix = img[((b * C + c) * H + hi * p + ph) * W + wi * p + pw];
              T& tv = tok[(ph * p + pw) * C + c];
              if (to_tokens)
                tv = pix;
              else
                pix = tv;
            }
      }
    }
  });
}
}  // namespace

void patchify(const Tensor& tokens, const Tensor& img, int64_t p) {
  float_dispatch(img.dtype(), "patchify", [&](auto tag) {
    using T = decltype(tag);
    patch_copy<T>(ptr<T>(tokens), ptr<T>(img), img.dim(0), img.dim(1), img.dim(2), img.dim(3), p,
                  true);
  });
}

void unpatchify(const Tensor& img, const Tensor& tokens, int64_t p) {
  float_dispatch(img.dtype(), "unpatchify", [&](auto tag) {
    using T = decltype(tag);
    patch_copy<T>(ptr<T>(tokens), ptr<T>(img), img.dim(0), img.dim(1), img.dim(2), img.dim(3), p,
                  false);
  });
}

}  // namespace rae::ops::cpu
