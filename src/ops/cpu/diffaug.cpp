// CPU DiffAug (translation, colour, cutout) on NHWC images; per-sample sums in double, in order.
#include "ops/diffaug.h"

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

struct Dims {
  int64_t B, H, W, C;
  int64_t per_sample() const { return H * W * C; }
};
Dims dims_of(const Tensor& t) {
  return Dims{t.dim(0), t.dim(1), t.dim(2), t.dim(3)};
}

// dst[b, h, w] (+)= src[b, h + dy, w + dx] where it exists (else = 0 / nothing added).
template <typename T>
void shift_copy(T* dst, const T* src, const Dims& d, const int32_t* sh, int sign, bool accumulate) {
  parallel_blocks(d.B * d.H, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / d.H, h = r % d.H;
      const int64_t dy = sign * sh[2 * b], dx = sign * sh[2 * b + 1];
      T* o = dst + r * d.W * d.C;
      const int64_t sy = h + dy;
      for (int64_t w = 0; w < d.W; ++w) {
        const int64_t sx = w + dx;
        const bool inside = sy >= 0 && sy < d.H && sx >= 0 && sx < d.W;
        const T* s = inside ? src + ((b * d.H + sy) * d.W + sx) * d.C : nullptr;
        for (int64_t c = 0; c < d.C; ++c) {
          if (accumulate) {
            if (inside) o[w * d.C + c] += s[c];
          } else {
            o[w * d.C + c] = inside ? s[c] : T(0);
          }
        }
      }
    }
  });
}

}  // namespace

void diffaug_translate_forward(const Tensor& out, const Tensor& x, const Tensor& shifts) {
  float_dispatch(x.dtype(), "diffaug_translate_forward", [&](auto tag) {
    using T = decltype(tag);
    shift_copy(ptr<T>(out), ptr<T>(x), dims_of(x), shifts.data<int32_t>(), 1, false);
  });
}

void diffaug_translate_backward(const Tensor& dx, const Tensor& dout, const Tensor& shifts) {
  // out[h] = x[h + dy]  =>  dx[h'] += dout[h' - dy]: the same gather with the shift negated.
  float_dispatch(dout.dtype(), "diffaug_translate_backward", [&](auto tag) {
    using T = decltype(tag);
    shift_copy(ptr<T>(dx), ptr<T>(dout), dims_of(dout), shifts.data<int32_t>(), -1, true);
  });
}

void diffaug_color_forward(const Tensor& out, const Tensor& x, const Tensor& factors) {
  const Dims d = dims_of(x);
  const float* f = factors.data<float>();
  float_dispatch(x.dtype(), "diffaug_color_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_blocks(d.B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T a = static_cast<T>(f[3 * b]), s = static_cast<T>(f[3 * b + 1]),
                k = static_cast<T>(f[3 * b + 2]);
        const T* xs = xp + b * d.per_sample();
        T* os = op + b * d.per_sample();
        double total = 0;
        for (int64_t p = 0; p < d.H * d.W; ++p) {
          T m1 = 0;
          for (int64_t c = 0; c < d.C; ++c) m1 += xs[p * d.C + c] + a;
          m1 /= static_cast<T>(d.C);
          for (int64_t c = 0; c < d.C; ++c) {
            const T y2 = (xs[p * d.C + c] + a - m1) * s + m1;
            os[p * d.C + c] = y2;
            total += y2;
          }
        }
        const T m2 = static_cast<T>(total / static_cast<double>(d.per_sample()));
        for (int64_t i = 0; i < d.per_sample(); ++i) os[i] = (os[i] - m2) * k + m2;
      }
    });
  });
}

void diffaug_color_backward(const Tensor& dx, const Tensor& dout, const Tensor& factors) {
  const Dims d = dims_of(dout);
  const float* f = factors.data<float>();
  float_dispatch(dout.dtype(), "diffaug_color_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* gp = ptr<T>(dout);
    T* xp = ptr<T>(dx);
    parallel_blocks(d.B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T s = static_cast<T>(f[3 * b + 1]), k = static_cast<T>(f[3 * b + 2]);
        const T* g = gp + b * d.per_sample();
        T* o = xp + b * d.per_sample();
        double total = 0;
        for (int64_t i = 0; i < d.per_sample(); ++i) total += g[i];
        const T mg = static_cast<T>(total / static_cast<double>(d.per_sample()));
        for (int64_t p = 0; p < d.H * d.W; ++p) {
          T sum2 = 0;  // sum over channels of dy2
          for (int64_t c = 0; c < d.C; ++c) sum2 += k * g[p * d.C + c] + (T(1) - k) * mg;
          const T m = sum2 / static_cast<T>(d.C);
          for (int64_t c = 0; c < d.C; ++c) {
            const T dy2 = k * g[p * d.C + c] + (T(1) - k) * mg;
            o[p * d.C + c] += s * dy2 + (T(1) - s) * m;
          }
        }
      }
    });
  });
}

void diffaug_cutout(const Tensor& out, const Tensor& x, const Tensor& boxes, bool accumulate) {
  const Dims d = dims_of(x);
  const int32_t* bx = boxes.data<int32_t>();
  float_dispatch(x.dtype(), "diffaug_cutout", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_blocks(d.B * d.H, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / d.H, h = r % d.H;
        const int32_t* q = bx + 4 * b;
        const bool row_in = h >= q[0] && h < q[1];
        for (int64_t w = 0; w < d.W; ++w) {
          const bool cut = row_in && w >= q[2] && w < q[3];
          for (int64_t c = 0; c < d.C; ++c) {
            const int64_t i = (r * d.W + w) * d.C + c;
            if (accumulate) {
              if (!cut) op[i] += xp[i];
            } else {
              op[i] = cut ? T(0) : xp[i];
            }
          }
        }
      }
    });
  });
}

}  // namespace rae::ops::cpu
