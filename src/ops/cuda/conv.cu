// CUDA channels-last convolution on cuDNN's convolution API (NHWC tensors, (O, KH, KW, C)
// filters, cross-correlation, F32 compute for F32 and BF16 data).
//
// Plans: one per (device, geometry, dtype, math mode, search mode), created on first use and
// kept for the life of the process: the tensor/filter/convolution descriptors and, per pass, the
// algorithm: cuDNN's heuristic first choice, or with ops::set_conv_algo_search(Measure) the one
// cudnnFind*AlgorithmEx measured fastest on scratch outputs (so the real gradients, which the
// backward accumulates into, are never touched by the search); workspaces up to 256 MiB.
// The backward passes take the best DETERMINISTIC algorithm (repeatable gradients).
// Workspaces come from the caching allocator. Math: F32 data multiplies per ops::precision()
// (fp32: FMA only; tf32 or bf16: TF32 tensor cores allowed), BF16 data on tensor cores.
// The backward accumulates through cuDNN's beta = 1; db is a deterministic column reduction.
// Epilogue (bias, fused ReLU, writing a row-strided or other-dtype output) is one small kernel.
#include <mutex>
#include <string>
#include <unordered_map>

#include "ops/conv.h"
#include "ops/cuda/common.cuh"
#include "ops/precision.h"
#include "tensor/cuda_memory.h"

#ifdef RAE_WITH_CUDNN
#include <cudnn.h>
#endif

namespace rae::ops::cuda {
using namespace cuda_detail;

namespace {

// out[r, o] = act(y[r, o] + b[o]) over rows (R, O); out and y may be the same tensor.
__global__ void bias_act_kernel(Ptr out, Ptr y, Ptr b, int64_t R, int64_t O, bool relu) {
  RAE_ROW_LOOP(r, c, R, O) {
    float v = y.ld2(r, c, O);
    if (b.valid()) v += b.ld(c);
    if (relu) v = fmaxf(v, 0.f);
    out.st2(r, c, O, v);
  }
}

// dst[i] += src[i] (both contiguous, any of F32/BF16).
__global__ void accumulate_kernel(Ptr dst, Ptr src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst.add(i, src.ld(i));
}

// db[c] += sum over rows of dout (R, O).
struct ColSum {
  Ptr d;
  int64_t O;
  __device__ void operator()(int64_t n, int64_t c, float* acc) const { acc[0] += d.ld2(n, c, O); }
};

// A contiguous copy of t in dtype dt (t itself when it already is one).
Tensor dense(const Tensor& t, DType dt) {
  Tensor c = t.is_contiguous() ? t : t.clone();
  return c.dtype() == dt ? c : c.cast(dt);
}

void accumulate(const Tensor& dst, const Tensor& src, const char* op) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  accumulate_kernel<<<grid_1d(n), 256, 0, cur_stream()>>>(ptr(dst, op, "grad"),
                                                          ptr(src, op, "grad scratch"), n);
  RAE_CUDA_LAUNCHED(op);
}

void add_bias_grad(const Tensor& db, const Tensor& dout, const ConvGeometry& g, const char* op) {
  const int64_t R = g.N * g.OH * g.OW;
  col_reduce<1>(ColSum{ptr(dout, op, "dout"), g.O}, 1, R, g.O, ptr(db, op, "db"));
}

#ifdef RAE_WITH_CUDNN

#define RAE_CUDNN_CHECK(expr)                                                                     \
  do {                                                                                            \
    cudnnStatus_t s_ = (expr);                                                                    \
    RAE_CHECK(s_ == CUDNN_STATUS_SUCCESS, "cuDNN error ", cudnnGetErrorString(s_), " in " #expr); \
  } while (0)

constexpr size_t kMaxWorkspace = 256u << 20;
constexpr int kMaxDevices = 16;

struct Algo {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

struct ConvPlan {
  cudnnHandle_t handle = nullptr;  // the device's
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // what the search may use
  bool measure = false;                       // ConvAlgoSearch::Measure
  bool has_fwd = false, has_bwd_data = false, has_bwd_filter = false;
  Algo fwd, bwd_data, bwd_filter;
  std::string what;  // the geometry, for error messages
};

struct DeviceDnn {
  cudnnHandle_t handle = nullptr;
  std::unordered_map<std::string, ConvPlan*> plans;
};

std::mutex g_dnn_mu;
DeviceDnn* g_dnn[kMaxDevices] = {};

// The device's handle and plan cache (never destroyed, as the cuBLAS handles of linear.cu).
// Called with g_dnn_mu held.
DeviceDnn& dnn_for_current_device() {
  const int dev = current_device();
  RAE_CHECK(dev >= 0 && dev < kMaxDevices, "cuDNN: device index ", dev, " out of range");
  if (!g_dnn[dev]) {
    auto* d = new DeviceDnn();
    RAE_CUDNN_CHECK(cudnnCreate(&d->handle));  // on the legacy default stream, as every op
    g_dnn[dev] = d;
  }
  return *g_dnn[dev];
}

cudnnDataType_t dnn_type(DType t) {
  RAE_CHECK(t == DType::F32 || t == DType::BF16, "cuDNN convolution: dtype ", dtype_name(t),
            " (f32 or bf16)");
  return t == DType::F32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
}

cudnnMathType_t math_for(DType t) {
  if (t == DType::BF16) return CUDNN_TENSOR_OP_MATH;
  return precision() == Precision::FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

int narrow_int(int64_t v, const std::string& what) {
  RAE_CHECK(v >= 0 && v <= 2147483647, "cuDNN convolution ", what, ": extent ", v,
            " exceeds int32 (split the batch)");
  return static_cast<int>(v);
}

std::string plan_key(const ConvGeometry& g, DType dt, cudnnMathType_t math, bool measure) {
  return ::rae::detail::concat(current_device(), ':', g.N, 'x', g.H, 'x', g.W, 'x', g.C, ":o", g.O,
                               'k', g.KH, 'x', g.KW, 's', g.stride_h, 'x', g.stride_w, 'p', g.pad_h,
                               'x', g.pad_w, ':', dtype_name(dt), ':', static_cast<int>(math),
                               measure ? ":measure" : ":heuristic");
}

ConvPlan* make_plan(const ConvGeometry& g, DType dt, cudnnMathType_t math) {
  auto* p = new ConvPlan();
  p->math = math;
  p->what =
      ::rae::detail::concat("x (", g.N, ", ", g.H, ", ", g.W, ", ", g.C, ") w (", g.O, ", ", g.KH,
                            ", ", g.KW, ", ", g.C, ") stride (", g.stride_h, ", ", g.stride_w,
                            ") pad (", g.pad_h, ", ", g.pad_w, ") ", dtype_name(dt));
  const int64_t elems = std::max(g.N * g.H * g.W * g.C, g.N * g.OH * g.OW * g.O);
  narrow_int(elems, p->what);
  const cudnnDataType_t t = dnn_type(dt);
  RAE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  RAE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  RAE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  RAE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  RAE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NHWC, t, (int)g.N, (int)g.C,
                                             (int)g.H, (int)g.W));
  RAE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NHWC, t, (int)g.N, (int)g.O,
                                             (int)g.OH, (int)g.OW));
  RAE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, t, CUDNN_TENSOR_NHWC, (int)g.O, (int)g.C,
                                             (int)g.KH, (int)g.KW));
  RAE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, (int)g.pad_h, (int)g.pad_w,
                                                  (int)g.stride_h, (int)g.stride_w, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // cuDNN's output-size rule must agree with ours (floor), or the descriptors are wrong.
  int n = 0, c = 0, h = 0, w = 0;
  RAE_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w));
  RAE_CHECK(n == g.N && c == g.O && h == g.OH && w == g.OW, "cuDNN convolution ", p->what,
            ": cuDNN's output (", n, ", ", h, ", ", w, ", ", c, ") differs from (", g.N, ", ", g.OH,
            ", ", g.OW, ", ", g.O, ")");
  return p;
}

ConvPlan& plan_for(const ConvGeometry& g, DType dt) {
  std::lock_guard<std::mutex> lock(g_dnn_mu);
  DeviceDnn& d = dnn_for_current_device();
  const cudnnMathType_t math = math_for(dt);
  const bool measure = conv_algo_search() == ConvAlgoSearch::Measure;
  const std::string key = plan_key(g, dt, math, measure);
  // The handle issues to this thread's current stream (a CUDA graph capture's, or the legacy one).
  RAE_CUDNN_CHECK(cudnnSetStream(d.handle, cur_stream()));
  auto it = d.plans.find(key);
  if (it != d.plans.end()) return *it->second;
  ConvPlan* p = make_plan(g, dt, math);
  p->handle = d.handle;
  p->measure = measure;
  d.plans.emplace(key, p);
  return *p;
}

Tensor scratch_bytes(size_t bytes) {
  return Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::U8,
                       Device::cuda(current_device()));
}

// The first (best-ranked) successful result within the workspace limit, deterministic ones
// only when asked (falling back to any); throws naming the pass and the geometry when none runs.
// In fp32 mode (plan math CUDNN_FMA_MATH) tensor-op algorithms are skipped and the call runs
// with FMA math (CUDNN_DEFAULT_MATH would let cuDNN use TF32 tensor cores on F32 data).
template <typename Perf>
Algo pick(const Perf* perf, int n, bool deterministic, const char* pass, const ConvPlan& p) {
  for (int want_det = deterministic ? 1 : 0; want_det >= 0; --want_det) {
    for (int i = 0; i < n; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspace) continue;
      const bool tensor_op = perf[i].mathType == CUDNN_TENSOR_OP_MATH ||
                             perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
      if (p.math == CUDNN_FMA_MATH && tensor_op) continue;
      if (want_det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
      return Algo{static_cast<int>(perf[i].algo), perf[i].memory,
                  p.math == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : perf[i].mathType};
    }
  }
  RAE_THROW("cuDNN convolution ", pass, ": no algorithm runs ", p.what);
}

void set_math(const ConvPlan& p, cudnnMathType_t m) {
  RAE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, m));
}

Tensor scratch_like(int64_t numel, DType dt) {
  return Tensor::empty({numel}, dt, Device::cuda(current_device()));
}

// Algorithm choice per pass, once per plan: cuDNN's heuristic ranking, or (Measure) trial runs
// on scratch outputs so that no real tensor, least of all an accumulated gradient, is touched.
void choose_forward(ConvPlan& p, const ConvGeometry& g, const void* x, const void* w, DType dt) {
  std::lock_guard<std::mutex> lock(g_dnn_mu);
  if (p.has_fwd) return;
  set_math(p, p.math);
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int n = 0;
  if (p.measure) {
    Tensor ys = scratch_like(g.N * g.OH * g.OW * g.O, dt), ws = scratch_bytes(kMaxWorkspace);
    RAE_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        p.handle, p.x, x, p.w, w, p.conv, p.y, ys.raw(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf,
        ws.raw(), kMaxWorkspace));
  } else {
    RAE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        p.handle, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
  }
  p.fwd = pick(perf, n, false, "forward", p);
  p.has_fwd = true;
}

void choose_backward_data(ConvPlan& p, const ConvGeometry& g, const void* w, const void* dy,
                          DType dt) {
  std::lock_guard<std::mutex> lock(g_dnn_mu);
  if (p.has_bwd_data) return;
  set_math(p, p.math);
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int n = 0;
  if (p.measure) {
    Tensor dxs = scratch_like(g.N * g.H * g.W * g.C, dt), ws = scratch_bytes(kMaxWorkspace);
    RAE_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
        p.handle, p.w, w, p.y, dy, p.conv, p.x, dxs.raw(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
        &n, perf, ws.raw(), kMaxWorkspace));
  } else {
    RAE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        p.handle, p.w, p.y, p.conv, p.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
  }
  p.bwd_data = pick(perf, n, true, "backward data", p);
  p.has_bwd_data = true;
}

void choose_backward_filter(ConvPlan& p, const ConvGeometry& g, const void* x, const void* dy,
                            DType dt) {
  std::lock_guard<std::mutex> lock(g_dnn_mu);
  if (p.has_bwd_filter) return;
  set_math(p, p.math);
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int n = 0;
  if (p.measure) {
    Tensor dws = scratch_like(g.O * g.patch(), dt), ws = scratch_bytes(kMaxWorkspace);
    RAE_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        p.handle, p.x, x, p.y, dy, p.conv, p.w, dws.raw(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
        &n, perf, ws.raw(), kMaxWorkspace));
  } else {
    RAE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        p.handle, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
  }
  p.bwd_filter = pick(perf, n, true, "backward filter", p);
  p.has_bwd_filter = true;
}

void run_forward(ConvPlan& p, const ConvGeometry& g, const void* x, const void* w, void* y,
                 DType dt) {
  choose_forward(p, g, x, w, dt);
  set_math(p, p.fwd.math);
  Tensor ws = scratch_bytes(p.fwd.workspace);
  const float one = 1.f, zero = 0.f;
  RAE_CUDNN_CHECK(cudnnConvolutionForward(p.handle, &one, p.x, x, p.w, w, p.conv,
                                          static_cast<cudnnConvolutionFwdAlgo_t>(p.fwd.algo),
                                          ws.raw(), p.fwd.workspace, &zero, p.y, y));
}

// dx (+)= the data gradient: beta 1 accumulates into dx, beta 0 overwrites.
void run_backward_data(ConvPlan& p, const ConvGeometry& g, const void* w, const void* dy, void* dx,
                       float beta, DType dt) {
  choose_backward_data(p, g, w, dy, dt);
  set_math(p, p.bwd_data.math);
  Tensor ws = scratch_bytes(p.bwd_data.workspace);
  const float one = 1.f;
  RAE_CUDNN_CHECK(
      cudnnConvolutionBackwardData(p.handle, &one, p.w, w, p.y, dy, p.conv,
                                   static_cast<cudnnConvolutionBwdDataAlgo_t>(p.bwd_data.algo),
                                   ws.raw(), p.bwd_data.workspace, &beta, p.x, dx));
}

void run_backward_filter(ConvPlan& p, const ConvGeometry& g, const void* x, const void* dy,
                         void* dw, float beta, DType dt) {
  choose_backward_filter(p, g, x, dy, dt);
  set_math(p, p.bwd_filter.math);
  Tensor ws = scratch_bytes(p.bwd_filter.workspace);
  const float one = 1.f;
  RAE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      p.handle, &one, p.x, x, p.y, dy, p.conv,
      static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.bwd_filter.algo), ws.raw(),
      p.bwd_filter.workspace, &beta, p.w, dw));
}

#endif  // RAE_WITH_CUDNN

}  // namespace

void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvGeometry& g) {
  const char* op = "cuda::conv2d_forward";
#ifdef RAE_WITH_CUDNN
  const DType dt = x.dtype();
  Tensor xc = dense(x, dt), wc = dense(w, dt);
  const bool direct = out.is_contiguous() && out.dtype() == dt;
  const int64_t R = g.N * g.OH * g.OW;
  Tensor y = direct ? out : Tensor::empty({R, g.O}, dt, out.device());
  ConvPlan& p = plan_for(g, dt);
  run_forward(p, g, xc.raw(), wc.raw(), y.raw(), dt);
  if (b.defined() || g.relu || !direct) {
    bias_act_kernel<<<grid_rows(R), threads_for_cols(g.O), 0, cur_stream()>>>(
        ptr(out, op, "out"), ptr(y, op, "y"), ptr(b, op, "b"), R, g.O, g.relu);
    RAE_CUDA_LAUNCHED(op);
  }
#else
  RAE_THROW(op, ": this build has no cuDNN (CUDA convolutions need cuDNN 9)");
#endif
}

void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  const char* op = "cuda::conv2d_backward";
  if (db.defined()) add_bias_grad(db, dout, g, op);
  if (!dx.defined() && !dw.defined()) return;
#ifdef RAE_WITH_CUDNN
  const DType dt = x.dtype();
  Tensor dy = dense(dout, dt);
  ConvPlan& p = plan_for(g, dt);
  if (dx.defined()) {
    Tensor wc = dense(w, dt);
    if (dx.dtype() == dt) {
      run_backward_data(p, g, wc.raw(), dy.raw(), dx.raw(), 1.f, dt);
    } else {
      Tensor tmp = Tensor::empty(dx.shape(), dt, dx.device());
      run_backward_data(p, g, wc.raw(), dy.raw(), tmp.raw(), 0.f, dt);
      accumulate(dx, tmp, op);
    }
  }
  if (dw.defined()) {
    Tensor xc = dense(x, dt);
    if (dw.dtype() == dt) {
      run_backward_filter(p, g, xc.raw(), dy.raw(), dw.raw(), 1.f, dt);
    } else {
      Tensor tmp = Tensor::empty(dw.shape(), dt, dw.device());
      run_backward_filter(p, g, xc.raw(), dy.raw(), tmp.raw(), 0.f, dt);
      accumulate(dw, tmp, op);
    }
  }
#else
  RAE_THROW(op, ": this build has no cuDNN (CUDA convolutions need cuDNN 9)");
#endif
}

}  // namespace rae::ops::cuda
