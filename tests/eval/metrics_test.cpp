// The evaluation metrics against the reference definitions (tests/reference/eval_reference.py):
// statistics vs numpy.cov, FID vs scipy.linalg.sqrtm on random, rank-deficient, ill-conditioned
// and same-distribution covariances (goldens from make_eval_goldens.py), Inception Score with the
// ADM split handling, precision/recall with the k = 3 manifold estimator (CPU, and CUDA vs CPU
// when a GPU is present).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/device.h"
#include "eval/feature_stats.h"
#include "eval/frechet.h"
#include "eval/inception_score.h"
#include "eval/pairwise.h"
#include "eval/precision_recall.h"
#include "io/npz.h"
#include "support/util.h"

namespace rae::eval {
namespace {

npz::Reader golden(const std::string& name) {
  return npz::Reader(test::golden_path("eval/" + name));
}
Tensor f32(const npz::Reader& r, const std::string& key) {
  return r.read(key).cast(DType::F32);
}
double scalar(const npz::Reader& r, const std::string& key) {
  return r.read(key).item(0);
}
GaussianStats stats_of(const Tensor& x) {
  FeatureMoments m(x.dim(1));
  m.add(x);
  return m.gaussian();
}
double rel(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(b), 1e-300);
}

TEST(EvalStats, MatchNumpyMeanAndCov) {
  npz::Reader r = golden("fid_cases.npz");
  for (const char* c : {"random", "rankdef", "illcond", "samedist"}) {
    Tensor x = f32(r, std::string(c) + "_x1");
    // Rows added in three uneven blocks: the Chan merges must give the one-block result.
    FeatureMoments m(x.dim(1));
    const int64_t n = x.dim(0), a = n / 3, b = n / 2;
    m.add(x.narrow(0, 0, a));
    m.add(x.narrow(0, a, b - a));
    m.add(x.narrow(0, b, n - b));
    GaussianStats g = m.gaussian();
    Tensor mu = r.read(std::string(c) + "_mu1"), sigma = r.read(std::string(c) + "_sigma1");
    ASSERT_EQ(g.count, n);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < sigma.numel(); ++i) scale = std::max(scale, std::abs(sigma.item(i)));
    for (int64_t i = 0; i < mu.numel(); ++i)
      worst = std::max(worst, std::abs(g.mu[i] - mu.item(i)) / scale);
    for (int64_t i = 0; i < sigma.numel(); ++i)
      worst = std::max(worst, std::abs(g.sigma[i] - sigma.item(i)) / scale);
    EXPECT_LT(worst, 1e-13) << c;
  }
}

TEST(EvalStats, ChanMergeIsStableUnderALargeMean) {
  // Features = 1e4 + N(0, 1): a sum-of-squares formula would lose ~8 digits to cancellation.
  Tensor x = test::randn({500, 6}, 7);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 1e4f;
  FeatureMoments m(6);
  for (int64_t r = 0; r < 500; r += 37) m.add(x.narrow(0, r, std::min<int64_t>(37, 500 - r)));
  GaussianStats g = m.gaussian();
  // Exact two-pass in long double.
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) {
      long double mi = 0, mj = 0, s = 0;
      for (int r = 0; r < 500; ++r)
        mi += x.data<float>()[r * 6 + i], mj += x.data<float>()[r * 6 + j];
      mi /= 500, mj /= 500;
      for (int r = 0; r < 500; ++r)
        s += (x.data<float>()[r * 6 + i] - mi) * (x.data<float>()[r * 6 + j] - mj);
      EXPECT_NEAR(g.sigma[i * 6 + j], static_cast<double>(s / 499), 1e-9) << i << "," << j;
    }
}

TEST(EvalStats, PackUnpackAndMergeAcrossParts) {
  Tensor x = test::randn({300, 10}, 11);
  FeatureMoments whole(10), a(10), b(10), c(10);
  whole.add(x);
  a.add(x.narrow(0, 0, 100));
  b.add(x.narrow(0, 100, 150));
  c.add(x.narrow(0, 250, 50));
  FeatureMoments merged = FeatureMoments::unpack(a.pack(), 10);
  merged.merge(FeatureMoments::unpack(b.pack(), 10));
  merged.merge(FeatureMoments::unpack(c.pack(), 10));
  GaussianStats g1 = whole.gaussian(), g2 = merged.gaussian();
  ASSERT_EQ(g2.count, 300);
  for (size_t i = 0; i < g1.sigma.size(); ++i) EXPECT_NEAR(g1.sigma[i], g2.sigma[i], 1e-13);
  for (size_t i = 0; i < g1.mu.size(); ++i) EXPECT_NEAR(g1.mu[i], g2.mu[i], 1e-14);
}

TEST(EvalFid, MatchesScipySqrtmOnEveryCovarianceCase) {
  npz::Reader r = golden("fid_cases.npz");
  for (const char* c : {"random", "rankdef", "illcond", "samedist"}) {
    GaussianStats s1 = stats_of(f32(r, std::string(c) + "_x1"));
    GaussianStats s2 = stats_of(f32(r, std::string(c) + "_x2"));
    const double want = scalar(r, std::string(c) + "_fid");
    FrechetTerms t = frechet_terms(s1, s2);
    std::printf("FID %-8s rae %.15g scipy %.15g relative difference %.2e\n", c, t.distance, want,
                rel(t.distance, want));
    EXPECT_LT(rel(t.distance, want), 1e-6) << c << ": " << t.distance << " vs scipy " << want;
    // Symmetric in its arguments, as the true distance is.
    EXPECT_LT(rel(frechet_distance(s2, s1), want), 1e-6) << c;
  }
}

TEST(EvalFid, IdenticalStatisticsGiveZero) {
  npz::Reader r = golden("fid_cases.npz");
  GaussianStats s = stats_of(f32(r, "random_x1"));
  FrechetTerms t = frechet_terms(s, s);
  // Exactly 0 in real arithmetic; what remains is rounding in the traces (~1e3 here).
  EXPECT_LT(std::abs(t.distance), 1e-9 * t.trace_1);
  EXPECT_LT(std::abs(scalar(r, "identical_fid")), 1e-9 * t.trace_1);
}

TEST(EvalFid, RejectsMismatchedAndNonFiniteStatistics) {
  GaussianStats a = stats_of(test::randn({20, 4}, 1)), b = stats_of(test::randn({20, 5}, 2));
  EXPECT_THROW(frechet_distance(a, b), Error);
  GaussianStats c = a;
  c.sigma[3] = std::nan("");
  EXPECT_THROW(frechet_distance(a, c), Error);
}

TEST(EvalInceptionScore, MatchesReferenceWithAdmSplits) {
  npz::Reader r = golden("is_case.npz");
  Tensor logits = f32(r, "logits");
  for (int64_t split : {int64_t{5000}, int64_t{1000}}) {
    InceptionScore is = inception_score(logits.data<float>(), logits.dim(0), logits.dim(1), split);
    Tensor want_splits = r.read("is_" + std::to_string(split) + "_splits");
    ASSERT_EQ(static_cast<int64_t>(is.split_scores.size()), want_splits.numel()) << split;
    for (int64_t i = 0; i < want_splits.numel(); ++i)
      EXPECT_LT(rel(is.split_scores[i], want_splits.item(i)), 1e-12) << split << " split " << i;
    EXPECT_LT(rel(is.score, scalar(r, "is_" + std::to_string(split))), 1e-12) << split;
  }
  // The default is ADM's 5000 per split.
  EXPECT_EQ(inception_score(logits.data<float>(), logits.dim(0), logits.dim(1)).split_scores.size(),
            2u);
}

void expect_pr_matches_golden(const ManifoldOptions& opts) {
  npz::Reader r = golden("pr_case.npz");
  Tensor ref = f32(r, "reference"), smp = f32(r, "samples");
  std::vector<float> r_ref = manifold_radii(ref, opts), r_smp = manifold_radii(smp, opts);
  Tensor want_ref = r.read("radii_reference"), want_smp = r.read("radii_samples");
  for (int64_t i = 0; i < want_ref.numel(); ++i)
    ASSERT_LT(rel(r_ref[i], want_ref.item(i)), 2e-5) << "reference radius " << i;
  for (int64_t i = 0; i < want_smp.numel(); ++i)
    ASSERT_LT(rel(r_smp[i], want_smp.item(i)), 2e-5) << "sample radius " << i;
  PrecisionRecall pr = evaluate_pr(ref, r_ref, smp, r_smp, opts);
  // The golden's decisions are > 1e-4 (relative) from flipping: float32 must agree exactly.
  EXPECT_EQ(pr.precision, scalar(r, "precision"));
  EXPECT_EQ(pr.recall, scalar(r, "recall"));
  EXPECT_EQ(pr.samples, smp.dim(0));
  EXPECT_EQ(pr.reference, ref.dim(0));
  PrecisionRecall again = precision_recall(ref, smp, opts);
  EXPECT_EQ(again.precision, pr.precision);
  EXPECT_EQ(again.recall, pr.recall);
}

TEST(EvalPrecisionRecall, MatchesReferenceTranscription) {
  expect_pr_matches_golden(ManifoldOptions{});
}

TEST(EvalPrecisionRecall, BlockSizesDoNotChangeTheResult) {
  ManifoldOptions o;
  o.row_block = 64;  // partial last blocks in both directions
  o.col_block = 100;
  expect_pr_matches_golden(o);
}

TEST(EvalPrecisionRecall, CudaMatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  ManifoldOptions o;
  o.device = Device::cuda(0);
  expect_pr_matches_golden(o);
}

TEST(EvalPairwise, CudaKernelsMatchCpuExactly) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  const int64_t rows = 77, cols = 301;
  Tensor g = test::randn({rows, cols}, 3), nu = test::rand_uniform({rows}, 4, 2, 3),
         nv = test::rand_uniform({cols}, 5, 2, 3);
  for (int k1 : {1, 4, 8}) {
    Tensor s_cpu = Tensor::full({rows, k1}, INFINITY);
    pairwise::update_smallest(g, nu, nv, s_cpu);
    pairwise::update_smallest(g, nu, nv, s_cpu);  // a second block on top of the first
    Tensor s_gpu = Tensor::full({rows, k1}, INFINITY, DType::F32, Device::cuda(0));
    Tensor gc = g.to(Device::cuda(0)), nuc = nu.to(Device::cuda(0)), nvc = nv.to(Device::cuda(0));
    pairwise::update_smallest(gc, nuc, nvc, s_gpu);
    pairwise::update_smallest(gc, nuc, nvc, s_gpu);
    EXPECT_EQ(test::max_abs_diff(s_cpu, s_gpu.to(Device::cpu())), 0.0) << "k1 " << k1;
  }
  Tensor ru = test::rand_uniform({rows}, 6, 0, 8), rv = test::rand_uniform({cols}, 7, 0, 8);
  Tensor fu = Tensor::zeros({rows}, DType::I32), fv = Tensor::zeros({cols}, DType::I32);
  pairwise::update_within(g, nu, nv, ru, rv, fu, fv);
  Tensor fuc = Tensor::zeros({rows}, DType::I32, Device::cuda(0)),
         fvc = Tensor::zeros({cols}, DType::I32, Device::cuda(0));
  pairwise::update_within(g.to(Device::cuda(0)), nu.to(Device::cuda(0)), nv.to(Device::cuda(0)),
                          ru.to(Device::cuda(0)), rv.to(Device::cuda(0)), fuc, fvc);
  Tensor a = fuc.to(Device::cpu()), b = fvc.to(Device::cpu());
  EXPECT_EQ(std::memcmp(a.raw(), fu.raw(), fu.nbytes()), 0);
  EXPECT_EQ(std::memcmp(b.raw(), fv.raw(), fv.nbytes()), 0);
}

TEST(EvalPairwise, SmallestKeepsTheKPlusOneSmallestInOrder) {
  // One row, distances |u|^2 - 2 g + |v|^2 = 0 - 2 g + 0 = -2 g: g = -d / 2.
  const float d[] = {5, 1, 4, 1, 9, 2, 6, 0.5f};
  Tensor g = Tensor::empty({1, 8}), nu = Tensor::zeros({1}), nv = Tensor::zeros({8});
  for (int j = 0; j < 8; ++j) g.data<float>()[j] = -d[j] / 2;
  Tensor s = Tensor::full({1, 4}, INFINITY);
  pairwise::update_smallest(g, nu, nv, s);
  const float want[] = {0.5f, 1, 1, 2};
  for (int t = 0; t < 4; ++t) EXPECT_EQ(s.data<float>()[t], want[t]) << t;
}

}  // namespace
}  // namespace rae::eval
