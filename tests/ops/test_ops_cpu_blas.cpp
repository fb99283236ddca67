// The CPU BLAS library (src/ops/cpu/blas.h) and the tiled GEMM on it (gemm_rm): the library runs
// vector kernels as wide as the CPU has (no silent fallback to generic SSE kernels), the GEMM is
// correct for every transpose combination across tile edges and bitwise identical for every
// thread count, and the library provides the LAPACK routines the evaluation code uses.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu/blas.h"
#include "ops/cpu/cpu_util.h"

using namespace rae::ops::cpu;

// Fails when the GEMM kernels are narrower than the CPU's vectors: e.g. a library that does not
// know the CPU model and falls back to its Prescott (SSE3) kernels, 3-4x slower (issue 10).
// OPENBLAS_CORETYPE=Prescott forces that fallback: ctest `ops_blas_generic_kernel_detected`
// runs this test so and expects it to fail.
TEST(OpsCpuBlas, KernelsUseTheCpuVectorWidth) {
  const BlasInfo b = blas_info();
  const Isa cpu = cpu_isa();
  std::printf("%s\n", blas_summary().c_str());
  if (cpu < Isa::kAvx2) GTEST_SKIP() << "CPU without AVX2: " << isa_name(cpu);
  EXPECT_GE(static_cast<int>(b.kernel_isa), static_cast<int>(cpu))
      << "the BLAS library runs " << b.kernel << " kernels (" << isa_name(b.kernel_isa)
      << ") on a CPU with " << isa_name(cpu);
  EXPECT_EQ(b.threads, 1) << "BLAS must leave the parallelism to oneTBB";
}

TEST(OpsCpuBlas, KernelIsaNames) {
  EXPECT_EQ(openblas_kernel_isa("Prescott"), Isa::kBaseline);
  EXPECT_EQ(openblas_kernel_isa("Nehalem"), Isa::kBaseline);
  EXPECT_EQ(openblas_kernel_isa("Sandybridge"), Isa::kAvx);
  EXPECT_EQ(openblas_kernel_isa("Haswell"), Isa::kAvx2);
  EXPECT_EQ(openblas_kernel_isa("Zen"), Isa::kAvx2);
  EXPECT_EQ(openblas_kernel_isa("SkylakeX"), Isa::kAvx512);
  EXPECT_EQ(openblas_kernel_isa("cooperlake"), Isa::kAvx512);
  EXPECT_EQ(openblas_kernel_isa("SapphireRapids"), Isa::kAvx512);
  EXPECT_EQ(openblas_kernel_isa("SomethingNew"), Isa::kBaseline);
}

namespace {

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
};

// Shapes above the single-call limit, cut into 2 strips of rows or columns, and 4 (the largest
// count), none dividing evenly; leading dimensions padded.
const GemmCase kCases[] = {
    {false, true, 600, 1100, 40},                                  // linear forward, column strips
    {false, false, 530, 300, 170},                                 // linear dx, row strips
    {true, false, 300, 650, 130},                                  // linear dw
    {true, true, 270, 520, 150},   {false, true, 1100, 300, 210},  // 4 row strips
};

template <typename T>
struct GemmData {
  std::vector<T> a, b, c0;
  int64_t lda, ldb, ldc;
};

template <typename T>
GemmData<T> make_data(const GemmCase& g) {
  GemmData<T> d;
  const int64_t ar = g.ta ? g.K : g.M, ac = g.ta ? g.M : g.K;
  const int64_t br = g.tb ? g.N : g.K, bc = g.tb ? g.K : g.N;
  d.lda = ac + 3, d.ldb = bc + 5, d.ldc = g.N + 7;
  d.a.resize(ar * d.lda), d.b.resize(br * d.ldb), d.c0.resize(g.M * d.ldc);
  uint32_t s = 12345;
  auto next = [&] {
    s = s * 1664525u + 1013904223u;
    return static_cast<T>((s >> 9) * (1.0 / (1 << 23)) - 0.5);
  };
  for (T& v : d.a) v = next();
  for (T& v : d.b) v = next();
  for (T& v : d.c0) v = next();
  return d;
}

// C = 0.75 * op(A) op(B) + 0.5 * C0 through gemm_rm, with oneTBB limited to `threads`.
template <typename T>
std::vector<T> run(const GemmCase& g, const GemmData<T>& d, int threads) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  std::vector<T> c = d.c0;
  gemm_rm<T>(g.ta, g.tb, g.M, g.N, g.K, 0.75, d.a.data(), d.lda, d.b.data(), d.ldb, 0.5, c.data(),
             d.ldc);
  return c;
}

template <typename T>
void check_gemm(double tol) {
  for (const GemmCase& g : kCases) {
    GemmData<T> d = make_data<T>(g);
    std::vector<T> c1 = run(g, d, 1);
    // against a plain double loop, every element (the padding of C untouched)
    double worst = 0;
    for (int64_t i = 0; i < g.M; ++i) {
      for (int64_t j = 0; j < g.N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < g.K; ++k) {
          const double a = g.ta ? d.a[k * d.lda + i] : d.a[i * d.lda + k];
          const double b = g.tb ? d.b[j * d.ldb + k] : d.b[k * d.ldb + j];
          s += a * b;
        }
        const double want = 0.75 * s + 0.5 * static_cast<double>(d.c0[i * d.ldc + j]);
        worst = std::max(worst, std::fabs(c1[i * d.ldc + j] - want));
      }
      for (int64_t j = g.N; j < d.ldc; ++j) ASSERT_EQ(c1[i * d.ldc + j], d.c0[i * d.ldc + j]);
    }
    EXPECT_LT(worst, tol) << g.ta << g.tb << " " << g.M << "x" << g.N << "x" << g.K;
    // bitwise the same with 2 and 4 threads as with 1
    for (int threads : {2, 4}) {
      std::vector<T> ct = run(g, d, threads);
      EXPECT_EQ(std::memcmp(ct.data(), c1.data(), c1.size() * sizeof(T)), 0)
          << "threads " << threads << ": " << g.ta << g.tb << " " << g.M << "x" << g.N << "x"
          << g.K;
    }
  }
}

}  // namespace

TEST(OpsCpuBlas, GemmTilesMatchReferenceAndAreThreadCountInvariant) {
  check_gemm<float>(1e-4);
  check_gemm<double>(1e-12);
}

// dsyevd_ (eigen-decomposition of a symmetric matrix) and dgees_ (real Schur form) from the
// same library, through the declarations of blas.h.
TEST(OpsCpuBlas, LapackEigenAndSchur) {
  // [[2, 1, 0], [1, 2, 0], [0, 0, 5]]: eigenvalues 1, 3, 5
  std::vector<double> a = {2, 1, 0, 1, 2, 0, 0, 0, 5}, w(3);
  const int n = 3;
  int info = -1, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  RAE_BLAS(dsyevd_)
  ("V", "U", &n, a.data(), &n, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  ASSERT_EQ(info, 0);
  lwork = static_cast<int>(work_query), liwork = iwork_query;
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  RAE_BLAS(dsyevd_)
  ("V", "U", &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  ASSERT_EQ(info, 0);
  EXPECT_NEAR(w[0], 1.0, 1e-12);
  EXPECT_NEAR(w[1], 3.0, 1e-12);
  EXPECT_NEAR(w[2], 5.0, 1e-12);

  // rotation by 90 degrees scaled by 2, plus 1 on the diagonal: eigenvalues 1 +- 2i
  std::vector<double> r = {1, -2, 2, 1}, wr(2), wi(2), vs(4), work2(16);
  const int n2 = 2, lwork2 = 16;
  int sdim = 0;
  std::vector<int> bwork(2);
  RAE_BLAS(dgees_)
  ("V", "N", nullptr, &n2, r.data(), &n2, &sdim, wr.data(), wi.data(), vs.data(), &n2, work2.data(),
   &lwork2, bwork.data(), &info, 1, 1);
  ASSERT_EQ(info, 0);
  EXPECT_NEAR(wr[0], 1.0, 1e-12);
  EXPECT_NEAR(wr[1], 1.0, 1e-12);
  EXPECT_NEAR(std::fabs(wi[0]), 2.0, 1e-12);
  EXPECT_NEAR(wi[0] + wi[1], 0.0, 1e-12);
}
