// CPU TF1-compatible bilinear resize (see ops/resize.h for the exact arithmetic). Built with
// -ffp-contract=off (src/CMakeLists.txt): a fused multiply-add would round once where
// torch-fidelity rounds twice, and the point of this op is to match it bit for bit.
#include "ops/resize.h"

#include <algorithm>
#include <vector>

#include "ops/cpu/cpu_util.h"

namespace rae::ops::cpu {

using namespace detail;

namespace {

// Source indices and weights along one dimension, in T.
template <typename T>
struct Axis {
  std::vector<int64_t> lo, hi;
  std::vector<T> d;
};

template <typename T>
Axis<T> axis(int64_t in, int64_t out) {
  // torch-fidelity: scale = in / out as a Python float, then torch.tensor(scale, float32)
  const T scale = static_cast<T>(static_cast<float>(static_cast<double>(in) / out));
  Axis<T> a;
  a.lo.resize(out);
  a.hi.resize(out);
  a.d.resize(out);
  for (int64_t i = 0; i < out; ++i) {
    const T pos = static_cast<T>(i) * scale;
    const int64_t lo = static_cast<int64_t>(pos);  // .long(): truncation (pos >= 0)
    a.lo[i] = lo;
    a.hi[i] = std::min(lo + 1, in - 1);
    a.d[i] = pos - static_cast<T>(lo);
  }
  return a;
}

template <typename T, typename In>
void resize(const Tensor& out, const Tensor& x, double sub, double div) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t OH = out.dim(1), OW = out.dim(2);
  const Axis<T> ay = axis<T>(H, OH), ax = axis<T>(W, OW);
  const In* src = static_cast<const In*>(x.raw());
  T* dst = out.data<T>();
  const T tsub = static_cast<T>(sub), tdiv = static_cast<T>(div);
  parallel_blocks(N * OH, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / OH, oy = r % OH;
      const In* row_lo = src + (n * H + ay.lo[oy]) * W * C;
      const In* row_hi = src + (n * H + ay.hi[oy]) * W * C;
      const T dy = ay.d[oy];
      T* o = dst + r * OW * C;
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t l = ax.lo[ox] * C, h = ax.hi[ox] * C;
        const T dx = ax.d[ox];
        for (int64_t c = 0; c < C; ++c) {
          const T v00 = static_cast<T>(row_lo[l + c]), v01 = static_cast<T>(row_lo[h + c]);
          const T v10 = static_cast<T>(row_hi[l + c]), v11 = static_cast<T>(row_hi[h + c]);
          const T top = v00 + (v01 - v00) * dx;
          const T bottom = v10 + (v11 - v10) * dx;
          const T v = top + (bottom - top) * dy;
          o[ox * C + c] = (v - tsub) / tdiv;
        }
      }
    }
  });
}

}  // namespace

void resize_bilinear_tf1(const Tensor& out, const Tensor& x, double sub, double div) {
  float_dispatch(out.dtype(), "resize_bilinear_tf1", [&](auto tag) {
    using T = decltype(tag);
    if (x.dtype() == DType::U8)
      resize<T, uint8_t>(out, x, sub, div);
    else
      resize<T, T>(out, x, sub, div);
  });
}

}  // namespace rae::ops::cpu
