// The CPU BLAS + LAPACK library (OpenBLAS with CPU-feature dispatch, from PyPI's
// scipy-openblas32; installed by scripts/blas-env.sh, linked through RAE_BLAS_LIB): the entry
// points this project calls, and what the library reports about the kernels it runs.
//
// Every symbol of that library carries a prefix (`scipy_`, so it never clashes with another
// BLAS in the same process); CMake passes it as RAE_BLAS_PREFIX and RAE_BLAS(name) spells the
// real symbol. Integers are 32-bit (LP64). Call LAPACK through these declarations, e.g.
// RAE_BLAS(dsyevd_)(...), so that a change of library is one edit here.
//
// Threading: the library runs single-threaded (blas_init() sets it, once); every parallel loop
// is oneTBB's, including the tiles of a large GEMM (gemm_rm in cpu/linear.cpp). One thread pool
// means no oversubscription and no spinning BLAS threads, and a GEMM's tiles fixed by its shape
// make its results identical for every thread count.
#pragma once
#include <cstddef>
#include <string>

#ifndef RAE_BLAS_PREFIX
#error "RAE_BLAS_PREFIX is set by CMake (RAE_BLAS_LIB); link the target to get it"
#endif
#define RAE_BLAS_CAT_(a, b) a##b
#define RAE_BLAS_CAT(a, b) RAE_BLAS_CAT_(a, b)
#define RAE_BLAS(name) RAE_BLAS_CAT(RAE_BLAS_PREFIX, name)

extern "C" {
// CBLAS: order 101 = row major, transpose 111 = no, 112 = yes, uplo 121 = upper, 122 = lower.
void RAE_BLAS(cblas_sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha,
                           const float* a, int lda, const float* b, int ldb, float beta, float* c,
                           int ldc);
void RAE_BLAS(cblas_dgemm)(int order, int ta, int tb, int m, int n, int k, double alpha,
                           const double* a, int lda, const double* b, int ldb, double beta,
                           double* c, int ldc);
void RAE_BLAS(cblas_dsyrk)(int order, int uplo, int trans, int n, int k, double alpha,
                           const double* a, int lda, double beta, double* c, int ldc);
// OpenBLAS extensions.
void RAE_BLAS(openblas_set_num_threads)(int n);
int RAE_BLAS(openblas_get_num_threads)(void);
char* RAE_BLAS(openblas_get_corename)(void);
char* RAE_BLAS(openblas_get_config)(void);
// LAPACK (Fortran ABI: arguments by pointer, then the hidden lengths of the character
// arguments). Symmetric eigen-decomposition (FID's matrix square root) and real Schur form.
void RAE_BLAS(dsyevd_)(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
                       double* w, double* work, const int* lwork, int* iwork, const int* liwork,
                       int* info, size_t jobz_len, size_t uplo_len);
typedef int (*rae_lapack_dselect2)(const double* wr, const double* wi);
void RAE_BLAS(dgees_)(const char* jobvs, const char* sort, rae_lapack_dselect2 select, const int* n,
                      double* a, const int* lda, int* sdim, double* wr, double* wi, double* vs,
                      const int* ldvs, double* work, const int* lwork, int* bwork, int* info,
                      size_t jobvs_len, size_t sort_len);
}

namespace rae::ops::cpu {

// Sets the library to one thread (once per process; called by every GEMM). Call it before
// calling the library directly, so that its calls also leave the parallelism to oneTBB.
void blas_init();

// Vector instruction set classes, ordered.
enum class Isa { kBaseline = 0, kAvx = 1, kAvx2 = 2, kAvx512 = 3 };
const char* isa_name(Isa isa);

// What the library runs on this machine.
struct BlasInfo {
  std::string library;              // e.g. "OpenBLAS 0.3.34.481.3 (scipy-openblas32)"
  std::string config;               // the library's own build string
  std::string kernel;               // kernel family it picked, e.g. "SkylakeX"
  Isa kernel_isa = Isa::kBaseline;  // the widest vectors those kernels use
  int threads = 1;                  // its own thread count (1: parallelism is oneTBB's)
};
BlasInfo blas_info();

// The widest vector ISA this CPU (and OS) supports, by cpuid (__builtin_cpu_supports).
// AVX-512 means F + BW + DQ + VL (what the GEMM kernels need).
Isa cpu_isa();

// The ISA class of an OpenBLAS kernel family name ("Prescott" -> baseline, "Haswell" -> AVX2,
// "SkylakeX" -> AVX-512). Unknown names are baseline.
Isa openblas_kernel_isa(const std::string& core);

// One line for `rae info`: library, version, kernels and their ISA next to the CPU's.
std::string blas_summary();

}  // namespace rae::ops::cpu
