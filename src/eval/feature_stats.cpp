#include "eval/feature_stats.h"

#include <algorithm>

#include "core/error.h"
#include "eval/linalg.h"

namespace rae::eval {

namespace {
// Rows centred per dsyrk call: bounds the float64 scratch (rows x dim) to ~16 MB at dim 2048.
constexpr int64_t kCentreRows = 1024;
}  // namespace

FeatureMoments::FeatureMoments(int64_t dim)
    : dim_(dim), mean_(dim, 0.0), m2_(static_cast<size_t>(dim * dim), 0.0) {
  RAE_CHECK(dim > 0, "FeatureMoments: feature dimension must be positive, got ", dim);
}

void FeatureMoments::add(const float* rows, int64_t n) {
  add_rows(rows, n);
}

void FeatureMoments::add(const Tensor& rows) {
  RAE_CHECK(!rows.is_cuda() && rows.is_contiguous() && rows.ndim() == 2 && rows.dim(1) == dim_,
            "FeatureMoments::add: expected contiguous CPU (n, ", dim_, "), got ", rows.str());
  if (rows.dtype() == DType::F64)
    add_rows(rows.data<double>(), rows.dim(0));
  else
    add_rows(rows.data<float>(), rows.dim(0));
}

template <typename T>
void FeatureMoments::add_rows(const T* rows, int64_t n) {
  if (n <= 0) return;
  const int64_t d = dim_;
  // Pass 1: the block's mean, summed in float64.
  std::vector<double> bmean(d, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const T* x = rows + r * d;
    for (int64_t j = 0; j < d; ++j) bmean[j] += static_cast<double>(x[j]);
  }
  for (int64_t j = 0; j < d; ++j) bmean[j] /= static_cast<double>(n);
  // Pass 2: M2 of the block around its own mean, centred rows through dsyrk in chunks.
  std::vector<double> bm2(static_cast<size_t>(d * d), 0.0);
  std::vector<double> centred(static_cast<size_t>(std::min(n, kCentreRows) * d));
  for (int64_t r0 = 0; r0 < n; r0 += kCentreRows) {
    const int64_t m = std::min(kCentreRows, n - r0);
    for (int64_t r = 0; r < m; ++r) {
      const T* x = rows + (r0 + r) * d;
      double* c = centred.data() + r * d;
      for (int64_t j = 0; j < d; ++j) c[j] = static_cast<double>(x[j]) - bmean[j];
    }
    syrk_upper_f64(centred.data(), m, d, 1.0, bm2.data());
  }
  merge_moments(n, bmean, bm2);
}

void FeatureMoments::merge(const FeatureMoments& o) {
  if (o.count_ == 0) return;
  RAE_CHECK(o.dim_ == dim_, "FeatureMoments::merge: dimensions ", dim_, " and ", o.dim_);
  merge_moments(o.count_, o.mean_, o.m2_);
}

void FeatureMoments::merge_moments(int64_t n_b, const std::vector<double>& mean_b,
                                   const std::vector<double>& m2_b) {
  const int64_t d = dim_;
  if (count_ == 0) {
    count_ = n_b;
    mean_ = mean_b;
    m2_ = m2_b;
    return;
  }
  const double na = static_cast<double>(count_), nb = static_cast<double>(n_b);
  const double n = na + nb, w = na * nb / n;
  std::vector<double> delta(d);
  for (int64_t j = 0; j < d; ++j) delta[j] = mean_b[j] - mean_[j];
  for (int64_t i = 0; i < d; ++i) {
    double* row = m2_.data() + i * d;
    const double* brow = m2_b.data() + i * d;
    const double di = delta[i] * w;
    for (int64_t j = i; j < d; ++j) row[j] += brow[j] + di * delta[j];
  }
  for (int64_t j = 0; j < d; ++j) mean_[j] += delta[j] * (nb / n);
  count_ += n_b;
}

GaussianStats FeatureMoments::gaussian() const {
  RAE_CHECK(count_ >= 2, "feature statistics need at least 2 samples, have ", count_);
  GaussianStats g;
  g.dim = dim_;
  g.count = count_;
  g.mu = mean_;
  g.sigma = m2_;
  const double inv = 1.0 / static_cast<double>(count_ - 1);
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = i; j < dim_; ++j) g.sigma[i * dim_ + j] *= inv;
  symmetrize_from_upper(g.sigma.data(), dim_);
  return g;
}

Tensor FeatureMoments::pack() const {
  Tensor t = Tensor::empty({packed_size(dim_)}, DType::F64);
  double* p = t.data<double>();
  *p++ = static_cast<double>(count_);
  p = std::copy(mean_.begin(), mean_.end(), p);
  for (int64_t i = 0; i < dim_; ++i)
    p = std::copy(m2_.begin() + i * dim_ + i, m2_.begin() + (i + 1) * dim_, p);
  return t;
}

FeatureMoments FeatureMoments::unpack(const Tensor& packed, int64_t dim) {
  RAE_CHECK(packed.dtype() == DType::F64 && packed.numel() == packed_size(dim),
            "FeatureMoments::unpack: expected ", packed_size(dim), " f64 values for dimension ",
            dim, ", got ", packed.str());
  Tensor c = packed.to(Device::cpu());
  const double* p = c.data<double>();
  FeatureMoments m(dim);
  m.count_ = static_cast<int64_t>(*p++);
  std::copy(p, p + dim, m.mean_.begin());
  p += dim;
  for (int64_t i = 0; i < dim; ++i) {
    std::copy(p, p + (dim - i), m.m2_.begin() + i * dim + i);
    p += dim - i;
  }
  return m;
}

}  // namespace rae::eval
