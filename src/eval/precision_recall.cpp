#include "eval/precision_recall.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "eval/gather.h"
#include "eval/pairwise.h"
#include "ops/linear.h"
#include "ops/precision.h"

namespace rae::eval {

namespace {

// One feature set on the compute device: the vectors and their squared norms (summed in
// float64, rounded to float32).
struct DeviceSet {
  Tensor features;  // (n, d) F32
  Tensor norms;     // (n) F32
  int64_t rows() const { return features.dim(0); }
};

DeviceSet upload(const Tensor& host, Device device, const char* what) {
  RAE_CHECK(
      !host.is_cuda() && host.is_contiguous() && host.ndim() == 2 && host.dtype() == DType::F32,
      "precision/recall: ", what, " features must be contiguous CPU F32 (n, d), got ", host.str());
  const int64_t n = host.dim(0), d = host.dim(1);
  Tensor norms = Tensor::empty({n}, DType::F32);
  const float* x = host.data<float>();
  float* nn = norms.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) {
      RAE_CHECK(std::isfinite(x[i * d + j]), "precision/recall: ", what, " feature ", j,
                " of vector ", i, " is not finite");
      s += static_cast<double>(x[i * d + j]) * x[i * d + j];
    }
    nn[i] = static_cast<float>(s);
  }
  return {host.to(device), norms.to(device)};
}

struct Blocks {
  int64_t rows, cols;
};
Blocks block_sizes(const ManifoldOptions& o) {
  // GPU: large blocks keep the GEMMs efficient (a 4096 x 16384 F32 block is 256 MB);
  // CPU: blocks that fit the caches of a few cores' worth of BLAS threads.
  Blocks b = o.device.is_cuda() ? Blocks{4096, 16384} : Blocks{1024, 4096};
  if (o.row_block > 0) b.rows = o.row_block;
  if (o.col_block > 0) b.cols = o.col_block;
  return b;
}

// Runs fn(row_begin, row_count, col_begin, col_count, dots) over this rank's share of the row
// blocks of `rows` against every column block of `cols`. Returns this rank's row range.
template <typename Fn>
std::pair<int64_t, int64_t> for_my_blocks(const DeviceSet& rows, const DeviceSet& cols,
                                          const ManifoldOptions& o, Fn&& fn) {
  const Blocks b = block_sizes(o);
  const int64_t n_row_blocks = (rows.rows() + b.rows - 1) / b.rows;
  const int rank = o.comm ? o.comm->rank() : 0, size = o.comm ? o.comm->size() : 1;
  auto [b0, b1] = rank_share(n_row_blocks, rank, size);
  const int64_t r_begin = std::min(b0 * b.rows, rows.rows());
  const int64_t r_end = std::min(b1 * b.rows, rows.rows());
  ops::PrecisionGuard fp32(ops::Precision::FP32);
  Tensor scratch = Tensor::empty({b.rows * b.cols}, DType::F32, o.device);
  for (int64_t r0 = r_begin; r0 < r_end; r0 += b.rows) {
    const int64_t rn = std::min(b.rows, r_end - r0);
    Tensor u = rows.features.narrow(0, r0, rn);
    for (int64_t c0 = 0; c0 < cols.rows(); c0 += b.cols) {
      const int64_t cn = std::min(b.cols, cols.rows() - c0);
      Tensor dots = scratch.narrow(0, 0, rn * cn).view({rn, cn});
      ops::matmul(dots, u, cols.features.narrow(0, c0, cn), false, true);
      fn(r0, rn, c0, cn, dots);
    }
  }
  return {r_begin, r_end};
}

std::vector<float> radii_of(const DeviceSet& set, const ManifoldOptions& o) {
  const int64_t k1 = o.k + 1;
  RAE_CHECK(o.k >= 1 && k1 <= pairwise::kMaxSmallest, "precision/recall: k = ", o.k,
            " must be in 1..", pairwise::kMaxSmallest - 1);
  RAE_CHECK(set.rows() >= k1, "precision/recall: ", set.rows(), " feature vectors cannot have a ",
            o.k, "-th nearest neighbour");
  const Blocks b = block_sizes(o);
  Tensor state = Tensor::empty({b.rows, k1}, DType::F32, o.device);
  std::vector<float> mine;  // radii of this rank's rows, in order
  int64_t current = -1, cur_rn = 0;
  auto flush = [&](int64_t rn) {
    Tensor s = state.narrow(0, 0, rn).to(Device::cpu());
    const float* p = s.data<float>();
    for (int64_t i = 0; i < rn; ++i) mine.push_back(p[i * k1 + o.k]);
  };
  for_my_blocks(set, set, o, [&](int64_t r0, int64_t rn, int64_t c0, int64_t, const Tensor& dots) {
    if (r0 != current) {
      if (current >= 0) flush(cur_rn);
      current = r0;
      cur_rn = rn;
      state.narrow(0, 0, rn).fill_(std::numeric_limits<double>::infinity());
    }
    pairwise::update_smallest(dots, set.norms.narrow(0, r0, rn),
                              set.norms.narrow(0, c0, dots.dim(1)), state.narrow(0, 0, rn));
  });
  if (current >= 0) flush(cur_rn);
  Tensor local = Tensor::empty({static_cast<int64_t>(mine.size())}, DType::F32);
  std::copy(mine.begin(), mine.end(), local.data<float>());
  Tensor all = all_gather_rows(o.comm, local);
  RAE_CHECK(all.numel() == set.rows(), "precision/recall: gathered ", all.numel(), " radii for ",
            set.rows(), " vectors");
  return std::vector<float>(all.data<float>(), all.data<float>() + all.numel());
}

Tensor host_f32(const std::vector<float>& v, Device device) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t.to(device);
}

PrecisionRecall evaluate_sets(const DeviceSet& ref, const std::vector<float>& ref_radii,
                              const DeviceSet& samples, const std::vector<float>& sample_radii,
                              const ManifoldOptions& o) {
  RAE_CHECK(static_cast<int64_t>(ref_radii.size()) == ref.rows() &&
                static_cast<int64_t>(sample_radii.size()) == samples.rows(),
            "precision/recall: radii do not match the feature sets");
  RAE_CHECK(ref.features.dim(1) == samples.features.dim(1),
            "precision/recall: reference features have ", ref.features.dim(1),
            " dimensions, samples ", samples.features.dim(1));
  Tensor r_ref = host_f32(ref_radii, o.device), r_smp = host_f32(sample_radii, o.device);
  // Rows are samples, columns reference vectors: row flags = samples inside the reference
  // manifold (precision), column flags = reference vectors inside the sample manifold (recall).
  Tensor row_flags = Tensor::zeros({samples.rows()}, DType::I32, o.device);
  Tensor col_flags = Tensor::zeros({ref.rows()}, DType::I32, o.device);
  auto [r_begin, r_end] = for_my_blocks(
      samples, ref, o, [&](int64_t r0, int64_t rn, int64_t c0, int64_t cn, const Tensor& dots) {
        pairwise::update_within(dots, samples.norms.narrow(0, r0, rn), ref.norms.narrow(0, c0, cn),
                                r_smp.narrow(0, r0, rn), r_ref.narrow(0, c0, cn),
                                row_flags.narrow(0, r0, rn), col_flags.narrow(0, c0, cn));
      });
  Tensor my_rows = row_flags.narrow(0, r_begin, r_end - r_begin).to(Device::cpu()).clone();
  Tensor rows_all = all_gather_rows(o.comm, my_rows);
  Tensor cols_all = col_flags.to(Device::cpu()).clone();
  if (o.comm) o.comm->all_reduce(cols_all);  // a reference vector counts if any rank marked it
  PrecisionRecall pr;
  pr.samples = samples.rows();
  pr.reference = ref.rows();
  int64_t in_ref = 0, in_smp = 0;
  for (int64_t i = 0; i < rows_all.numel(); ++i) in_ref += rows_all.data<int32_t>()[i] != 0;
  for (int64_t i = 0; i < cols_all.numel(); ++i) in_smp += cols_all.data<int32_t>()[i] != 0;
  pr.precision = static_cast<double>(in_ref) / static_cast<double>(pr.samples);
  pr.recall = static_cast<double>(in_smp) / static_cast<double>(pr.reference);
  return pr;
}

}  // namespace

std::vector<float> manifold_radii(const Tensor& features, const ManifoldOptions& opts) {
  return radii_of(upload(features, opts.device, "the"), opts);
}

PrecisionRecall evaluate_pr(const Tensor& reference, const std::vector<float>& reference_radii,
                            const Tensor& samples, const std::vector<float>& sample_radii,
                            const ManifoldOptions& opts) {
  return evaluate_sets(upload(reference, opts.device, "reference"), reference_radii,
                       upload(samples, opts.device, "sample"), sample_radii, opts);
}

PrecisionRecall precision_recall(const Tensor& reference, const Tensor& samples,
                                 const ManifoldOptions& opts) {
  DeviceSet ref = upload(reference, opts.device, "reference");
  DeviceSet smp = upload(samples, opts.device, "sample");
  std::vector<float> r_ref = radii_of(ref, opts);
  std::vector<float> r_smp = radii_of(smp, opts);
  return evaluate_sets(ref, r_ref, smp, r_smp, opts);
}

}  // namespace rae::eval
