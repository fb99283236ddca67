// CUDA GEMM and linear layer on cuBLASLt: bf16 (or f32/tf32, per ops::precision()) inputs with
// F32 accumulation, the bias fused as a cuBLASLt epilogue. One cuBLASLt handle and one workspace
// (from the caching allocator) per device, created on first use; heuristic results are cached
// per problem. When cuBLASLt offers no algorithm (odd alignments, tiny shapes) the call falls
// back to cublasGemmStridedBatchedEx plus a bias kernel, so every shape works. The bias gradient
// of linear_backward comes from the weight-gradient GEMM's BGRADB epilogue where cuBLASLt has it.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "ops/cuda/common.cuh"
#include "ops/cuda/gemm.cuh"
#include "ops/cuda/rowvec.cuh"
#include "ops/linear.h"
#include "ops/precision.h"
#include "tensor/cuda_memory.h"

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

#define RAE_CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                           \
    cublasStatus_t s_ = (expr);                                                                  \
    RAE_CHECK(s_ == CUBLAS_STATUS_SUCCESS, "cuBLAS error ", static_cast<int>(s_), " in " #expr); \
  } while (0)

constexpr size_t kWorkspaceBytes = 32u << 20;
constexpr int kMaxDevices = 16;

struct DeviceBlas {
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  std::unordered_map<std::string, cublasLtMatmulHeuristicResult_t> algos;
  std::unordered_map<std::string, bool> no_algo;  // problems cuBLASLt cannot do: use cuBLAS
};

std::mutex g_blas_mu;
DeviceBlas* g_blas[kMaxDevices] = {};

// The per-device handles; created once and kept for the life of the process (never destroyed:
// destruction order at exit would race the CUDA runtime's own teardown).
DeviceBlas& blas_for_current_device() {
  int dev = current_device();
  RAE_CHECK(dev >= 0 && dev < kMaxDevices, "cuBLAS: device index ", dev, " out of range");
  std::lock_guard<std::mutex> lock(g_blas_mu);
  if (!g_blas[dev]) {
    auto* b = new DeviceBlas();
    RAE_CUBLAS_CHECK(cublasLtCreate(&b->lt));
    RAE_CUBLAS_CHECK(cublasCreate(&b->blas));
    b->workspace = cuda_memory::alloc(kWorkspaceBytes, dev);
    g_blas[dev] = b;
  }
  return *g_blas[dev];
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    default:
      RAE_THROW("CUDA GEMM: unsupported dtype ", dtype_name(t));
  }
}

// Alignment (bytes, power of two up to 256) that every row start of a matrix satisfies.
int alignment_of(const void* p, int64_t ld, DType t) {
  uintptr_t u = reinterpret_cast<uintptr_t>(p);
  uint64_t ld_bytes = static_cast<uint64_t>(ld) * dtype_size(t);
  int a = 256;
  while (a > 1 && ((u % a) != 0 || (ld_bytes % a) != 0)) a >>= 1;
  return a;
}

cublasComputeType_t compute_type(DType in_t) {
  if (in_t == DType::BF16) return CUBLAS_COMPUTE_32F;
  switch (precision()) {
    case Precision::TF32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case Precision::BF16:
      return CUBLAS_COMPUTE_32F_FAST_16BF;
    case Precision::FP32:
      break;
  }
  return CUBLAS_COMPUTE_32F;
}

__global__ void convert_kernel(Ptr dst, Ptr src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst.st(i, src.ld(i));
}

__global__ void add_bias_kernel(Ptr C, Ptr bias, int64_t rows, int64_t cols) {
  RAE_ROW_LOOP(r, c, rows, cols) C.add2(r, c, cols, bias.ld(c));
}

struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  if (batch <= 1) return;
  int32_t count = static_cast<int32_t>(batch);
  RAE_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                    sizeof(count)));
  RAE_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                    &stride, sizeof(stride)));
}

// Tries cuBLASLt; returns false when it has no algorithm for the problem (nothing was run).
// Column-major view: C^T (N, M) = op(B)^T (N, K) @ op(A)^T (K, M), so cuBLASLt's "A" is our B.
bool try_lt(DeviceBlas& h, const Gemm& g, bool with_bias) {
  cublasComputeType_t ct = compute_type(g.in_t);
  cudaDataType_t it = cuda_type(g.in_t), ot = cuda_type(g.c_t);
  int al_a = alignment_of(g.B, g.ldb, g.in_t), al_b = alignment_of(g.A, g.lda, g.in_t);
  int al_c = alignment_of(g.C, g.ldc, g.c_t);
  std::string key =
      std::to_string(g.M) + "," + std::to_string(g.N) + "," + std::to_string(g.K) + "," +
      std::to_string(g.lda) + "," + std::to_string(g.ldb) + "," + std::to_string(g.ldc) + "," +
      std::to_string(g.ta) + std::to_string(g.tb) + "," + std::to_string((int)it) + "," +
      std::to_string((int)ot) + "," + std::to_string((int)ct) + "," + std::to_string(with_bias) +
      "," + std::to_string(g.batch) + "," + std::to_string(g.stride_a) + "," +
      std::to_string(g.stride_b) + "," + std::to_string(g.stride_c) + "," + std::to_string(al_a) +
      "," + std::to_string(al_b) + "," + std::to_string(al_c) + "," + std::to_string(g.beta != 0.f);
  if (g.bgrad_a) key += ",bgradb";
  if (h.no_algo.count(key)) return false;

  LtDescs d;
  RAE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, ct, CUDA_R_32F));
  cublasOperation_t opa = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt A = our B
  cublasOperation_t opb = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt B = our A
  RAE_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  RAE_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (g.bgrad_a) {  // bias gradient over K of our A = cuBLASLt's B: BGRADB, an F32 vector
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BGRADB;
    RAE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    RAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &g.bgrad_a, sizeof(g.bgrad_a)));
    cudaDataType_t bt = CUDA_R_32F;
    RAE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  } else if (with_bias) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    RAE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    RAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &g.bias, sizeof(g.bias)));
    cudaDataType_t bt = ot;
    RAE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  }
  // Stored (column-major) shapes of the operands.
  uint64_t a_rows = g.tb ? g.K : g.N, a_cols = g.tb ? g.N : g.K;
  uint64_t b_rows = g.ta ? g.M : g.K, b_cols = g.ta ? g.K : g.M;
  RAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.a, it, a_rows, a_cols, g.ldb));
  RAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.b, it, b_rows, b_cols, g.lda));
  RAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.c, ot, g.N, g.M, g.ldc));
  set_batch(d.a, g.batch, g.stride_b);
  set_batch(d.b, g.batch, g.stride_a);
  set_batch(d.c, g.batch, g.stride_c);

  auto it_algo = h.algos.find(key);
  if (it_algo == h.algos.end()) {
    RAE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
    uint64_t ws = kWorkspaceBytes;
    RAE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    uint32_t aa = al_a, ab = al_b, ac = al_c;
    RAE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa)));
    RAE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab)));
    RAE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac)));
    RAE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac)));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(h.lt, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &res, &found);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0 || res.state != CUBLAS_STATUS_SUCCESS) {
      h.no_algo[key] = true;
      return false;
    }
    it_algo = h.algos.emplace(key, res).first;
  }
  cublasStatus_t st =
      cublasLtMatmul(h.lt, d.op, &g.alpha, g.B, d.a, g.A, d.b, &g.beta, g.C, d.c, g.C, d.c,
                     &it_algo->second.algo, h.workspace, kWorkspaceBytes, cur_stream());
  if (st != CUBLAS_STATUS_SUCCESS) {  // remember and let the caller use the fallback
    h.algos.erase(it_algo);
    h.no_algo[key] = true;
    return false;
  }
  return true;
}

void run_cublas(DeviceBlas& h, const Gemm& g) {
  RAE_CHECK(g.M < (1ll << 31) && g.N < (1ll << 31) && g.K < (1ll << 31),
            "GEMM too large for cuBLAS");
  cublasOperation_t opa = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opb = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  RAE_CUBLAS_CHECK(cublasSetStream(h.blas, cur_stream()));
  RAE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h.blas, opa, opb, (int)g.N, (int)g.M, (int)g.K, &g.alpha, g.B, cuda_type(g.in_t), (int)g.ldb,
      g.stride_b, g.A, cuda_type(g.in_t), (int)g.lda, g.stride_a, &g.beta, g.C, cuda_type(g.c_t),
      (int)g.ldc, g.stride_c, (int)g.batch, compute_type(g.in_t), CUBLAS_GEMM_DEFAULT));
}

// The fused bias-gradient GEMM (Gemm::bgrad_a); false when cuBLASLt cannot, nothing run then.
bool gemm_bgrad_local(const Gemm& g) {
  if (g.M == 0 || g.N == 0 || g.K == 0 || g.batch != 1 || g.bias) return false;
  return try_lt(blas_for_current_device(), g, false);
}

__global__ void add_f32_kernel(Ptr out, const float* v, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    out.add(i, v[i]);
}

void gemm_local(const Gemm& g) {
  if (g.M == 0 || g.N == 0 || g.batch == 0) return;
  DeviceBlas& h = blas_for_current_device();
  RAE_CHECK(g.batch == 1 || g.bias == nullptr, "GEMM: bias only for unbatched GEMMs");
  if (g.K == 0) {  // empty product: C = beta * C (+ bias); let cuBLAS handle the scaling
    run_cublas(h, g);
  } else if (try_lt(h, g, g.bias != nullptr)) {
    return;
  } else if (g.bias && try_lt(h, g, false)) {
    // unfused bias below
  } else {
    run_cublas(h, g);
  }
  if (g.bias) {
    int kind = g.c_t == DType::BF16 ? kBF16 : kF32;
    Ptr c{g.C, kind, g.N, g.ldc};
    if (c.cols == c.stride) c.cols = c.stride = 1;
    Ptr b{const_cast<void*>(g.bias), kind, 1, 1};
    add_bias_kernel<<<grid_rows(g.M), threads_for_cols(g.N), 0, cur_stream()>>>(c, b, g.M, g.N);
    RAE_CUDA_LAUNCHED("gemm bias");
  }
}

// Row stride (elements) of a tensor seen as rows of its last dim.
int64_t row_stride(const Tensor& t, const char* op, const char* arg) {
  Ptr q = ptr(t, op, arg);  // checks device, dtype and that the rows are uniformly strided
  return q.stride == q.cols && q.cols == 1 ? last_dim(t) : q.stride;
}

// A GEMM operand: the tensor itself when it has dtype dt (any row stride), else a contiguous
// converted copy (kept alive by `keep`).
struct Mat {
  Tensor keep;
  const void* p = nullptr;
  int64_t ld = 0;
};
Mat mat_of(const Tensor& t, DType dt, const char* op, const char* arg) {
  int64_t ld = row_stride(t, op, arg);
  if (t.dtype() == dt) return Mat{t, t.raw(), ld};
  Tensor c = Tensor::empty(t.shape(), dt, t.device());
  int64_t n = t.numel();
  if (n > 0) {
    convert_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(c, op, arg), ptr(t, op, arg), n);
    RAE_CUDA_LAUNCHED(op);
  }
  return Mat{c, c.raw(), last_dim(t)};
}

// GEMM inputs run in bf16 when any operand is bf16, else in f32 (tf32/bf16 per precision()).
DType compute_dtype(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined() && t->dtype() == DType::BF16) return DType::BF16;
  return DType::F32;
}

struct ColSum {  // db[o] += sum_n dout[n, o]
  Ptr dout;
  int64_t O;
  __device__ void operator()(int64_t n, int64_t o, float* acc) const {
    acc[0] += dout.ld2(n, o, O);
  }
};

}  // namespace

void matmul(const Tensor& C, const Tensor& A, const Tensor& B, bool ta, bool tb, double alpha,
            double beta) {
  const char* op = "cuda::matmul";
  require(A, op, "A");
  require(B, op, "B");
  require(C, op, "C");
  RAE_CHECK(A.ndim() == B.ndim() && A.ndim() == C.ndim() && (A.ndim() == 2 || A.ndim() == 3), op,
            ": expects 2-D or 3-D A, B, C of equal rank, got ", A.str(), ", ", B.str(), ", ",
            C.str());
  int nd = A.ndim();
  int64_t batch = nd == 3 ? A.dim(0) : 1;
  if (nd == 3)
    RAE_CHECK(B.dim(0) == batch && C.dim(0) == batch, op, ": batch dims differ: ", A.str(), ", ",
              B.str(), ", ", C.str());
  int64_t ar = A.dim(nd - 2), ac = A.dim(nd - 1), br = B.dim(nd - 2), bc = B.dim(nd - 1);
  int64_t M = ta ? ac : ar, K = ta ? ar : ac;
  int64_t Kb = tb ? bc : br, N = tb ? br : bc;
  RAE_CHECK(K == Kb, op, ": inner dims differ: ", A.str(), (ta ? "^T" : ""), " @ ", B.str(),
            (tb ? "^T" : ""));
  RAE_CHECK(C.dim(nd - 2) == M && C.dim(nd - 1) == N, op, ": C is ", C.str(), ", expected (", M,
            ", ", N, ")");
  if (nd == 3)
    RAE_CHECK(A.is_contiguous() && B.is_contiguous() && C.is_contiguous(), op,
              ": batched operands must be contiguous");
  DType cdt = compute_dtype({&A, &B, &C});
  Mat a = mat_of(A, cdt, op, "A"), b = mat_of(B, cdt, op, "B");
  Gemm g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = a.p;
  g.lda = a.ld;
  g.ta = ta;
  g.B = b.p;
  g.ldb = b.ld;
  g.tb = tb;
  g.in_t = cdt;
  g.C = C.raw();
  g.ldc = row_stride(C, op, "C");
  g.c_t = C.dtype();
  g.alpha = static_cast<float>(alpha);
  g.beta = static_cast<float>(beta);
  g.batch = batch;
  g.stride_a = ar * ac;
  g.stride_b = br * bc;
  g.stride_c = M * N;
  gemm_local(g);
}

void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  const char* op = "cuda::linear_forward";
  require(x, op, "x");
  require(w, op, "w");
  require(out, op, "out");
  RAE_CHECK(w.ndim() == 2, op, ": w must be (O, I), got ", w.str());
  int64_t O = w.dim(0), I = w.dim(1);
  RAE_CHECK(last_dim(x) == I, op, ": x ", x.str(), " does not end in I = ", I);
  int64_t N = x.numel() / I;
  RAE_CHECK(last_dim(out) == O && out.numel() == N * O, op, ": out is ", out.str(), ", expected (",
            N, ", ", O, ")");
  require_numel(b, O, op, "b");
  DType cdt = compute_dtype({&x, &w, &out});
  Mat xa = mat_of(x, cdt, op, "x"), wa = mat_of(w, cdt, op, "w");
  Mat bias;
  if (b.defined()) bias = mat_of(b, out.dtype(), op, "b");
  Gemm g;
  g.M = N;
  g.N = O;
  g.K = I;
  g.A = xa.p;
  g.lda = xa.ld;
  g.ta = false;
  g.B = wa.p;
  g.ldb = wa.ld;
  g.tb = true;
  g.in_t = cdt;
  g.C = out.raw();
  g.ldc = row_stride(out, op, "out");
  g.c_t = out.dtype();
  g.bias = bias.p;
  gemm_local(g);
}

void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, GradMode mode) {
  const char* op = "cuda::linear_backward";
  require(dout, op, "dout");
  require(w, op, "w");
  RAE_CHECK(w.ndim() == 2, op, ": w must be (O, I), got ", w.str());
  int64_t O = w.dim(0), I = w.dim(1);
  RAE_CHECK(last_dim(dout) == O, op, ": dout ", dout.str(), " does not end in O = ", O);
  int64_t N = dout.numel() / O;
  DType cdt = compute_dtype({&dout, &x, &w, &dx});
  Mat da = mat_of(dout, cdt, op, "dout");
  if (dx.defined()) {  // dx (N, I) += dout (N, O) @ w (O, I)
    RAE_CHECK(dx.numel() == N * I && last_dim(dx) == I, op, ": dx is ", dx.str(), ", expected (", N,
              ", ", I, ")");
    Mat wa = mat_of(w, cdt, op, "w");
    Gemm g;
    g.M = N;
    g.N = I;
    g.K = O;
    g.A = da.p;
    g.lda = da.ld;
    g.B = wa.p;
    g.ldb = wa.ld;
    g.in_t = cdt;
    g.C = dx.raw();
    g.ldc = row_stride(dx, op, "dx");
    g.c_t = dx.dtype();
    g.beta = mode == GradMode::Overwrite ? 0.f : 1.f;  // beta 0: cuBLAS never reads dx
    gemm_local(g);
  }
  // With both dw and db, db comes from dw's GEMM epilogue (BGRADB) into an F32 scratch that is
  // then added (the epilogue writes, the op accumulates); RAE_CUDA_LEGACY=bgrad, or no cuBLASLt
  // algorithm for it, keeps the separate column reduction below.
  Tensor db_fused;
  if (dw.defined()) {  // dw (O, I) += dout^T (O, N) @ x (N, I)
    require(x, op, "x");
    RAE_CHECK(x.numel() == N * I && last_dim(x) == I, op, ": x is ", x.str(), ", expected (", N,
              ", ", I, ")");
    require_numel(dw, O * I, op, "dw");
    Mat xa = mat_of(x, cdt, op, "x");
    Gemm g;
    g.M = O;
    g.N = I;
    g.K = N;
    g.A = da.p;
    g.lda = da.ld;
    g.ta = true;
    g.B = xa.p;
    g.ldb = xa.ld;
    g.in_t = cdt;
    g.C = dw.raw();
    g.ldc = row_stride(dw, op, "dw");
    g.c_t = dw.dtype();
    g.beta = 1.f;
    if (db.defined() && fast_path("bgrad")) {
      db_fused = Tensor::empty({O}, DType::F32, dout.device());
      g.bgrad_a = static_cast<float*>(db_fused.raw());
      if (!gemm_bgrad_local(g)) db_fused = Tensor();
      g.bgrad_a = nullptr;
    }
    if (!db_fused.defined()) gemm_local(g);
  }
  if (db.defined()) {
    require_numel(db, O, op, "db");
    if (db_fused.defined()) {
      add_f32_kernel<<<grid_1d(O), 256, 0, cur_stream()>>>(
          ptr(db, op, "db"), static_cast<const float*>(db_fused.raw()), O);
      RAE_CUDA_LAUNCHED(op);
    } else {
      col_reduce<1>(ColSum{ptr(dout, op, "dout"), O}, 1, N, O, ptr(db, op, "db"));
    }
  }
}

}  // namespace rae::ops::cuda

void rae::ops::cuda_detail::run_gemm(const Gemm& g) {
  rae::ops::cuda::gemm_local(g);
}

bool rae::ops::cuda_detail::gemm_with_bgrad(const Gemm& g) {
  return rae::ops::cuda::gemm_bgrad_local(g);
}
