// cuDNN fused attention through the cuDNN frontend graph API (see attention_cudnn.h). Compiled
// by the host compiler: the frontend is a large C++ header library and has no device code.
#include "ops/cuda/attention_cudnn.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/device.h"
#include "tensor/cuda_stream.cuh"
#include "tensor/tensor.h"

#ifdef RAE_WITH_CUDNN_FRONTEND
#include <cudnn_frontend.h>
#include <dlfcn.h>

// The handle the frontend's dynamic-loading shim resolves cuDNN symbols from; set below.
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}
#endif

namespace rae::ops::cuda_detail {

namespace {
thread_local std::string g_last_error;
}  // namespace

std::string sdpa_last_error() {
  return g_last_error;
}

#ifndef RAE_WITH_CUDNN_FRONTEND

bool sdpa_built() {
  return false;
}
bool sdpa_forward(const SdpaProblem&, const void*, void*, float*) {
  g_last_error = "built without the cuDNN frontend (scripts/install-deps.sh installs it)";
  return false;
}
bool sdpa_backward(const SdpaProblem&, const void*, const void*, const void*, const float*, void*) {
  g_last_error = "built without the cuDNN frontend (scripts/install-deps.sh installs it)";
  return false;
}
int64_t sdpa_backend_version() {
  return 0;
}

#else

namespace {
namespace fe = cudnn_frontend;

// Tensor uids in the variant packs.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kdO, kdQ, kdK, kdV };

std::mutex g_mu;

// Loads libcudnn once (RAE_CUDNN_LIBRARY may name the file); false with a reason if it cannot.
bool load_cudnn() {
  static bool tried = false, ok = false;
  static std::string why;
  if (!tried) {
    tried = true;
    const char* user = std::getenv("RAE_CUDNN_LIBRARY");
    for (const char* name : {user, "libcudnn.so.9", "libcudnn.so"}) {
      if (!name || !*name) continue;
      void* h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
      if (h) {
        fe::cudnn_dlhandle = h;
        ok = true;
        break;
      }
      const char* e = dlerror();
      why += std::string(name) + ": " + (e ? e : "not found") + "; ";
    }
    if (!ok) why = "cannot load cuDNN (" + why + "set LD_LIBRARY_PATH or RAE_CUDNN_LIBRARY)";
  }
  if (!ok) g_last_error = why;
  return ok;
}

struct Handles {
  cudnnHandle_t h = nullptr;
};

// One cuDNN handle per device, on the legacy default stream (where every rae kernel runs).
cudnnHandle_t handle_for(int dev) {
  static std::map<int, Handles> handles;
  Handles& e = handles[dev];
  if (!e.h) {
    cudnnHandle_t h = nullptr;
    if (fe::detail::create_handle(&h) != CUDNN_STATUS_SUCCESS) return nullptr;
    e.h = h;  // never destroyed: the process ends with it (as the cuBLAS handles)
  }
  return e.h;
}

struct CachedGraph {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace = 0;
  std::string error;  // non-empty: cuDNN cannot run this problem; do not retry
};

using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int, uint32_t, bool>;
// Never destroyed (as the cuBLAS handles): destroying plans at exit would call into cuDNN and
// the CUDA runtime while they are being torn down.
std::map<Key, CachedGraph>& g_graphs = *new std::map<Key, CachedGraph>;

bool deterministic() {
  const char* s = std::getenv("RAE_CUDNN_DETERMINISTIC");
  return s && *s && std::strcmp(s, "0") != 0;
}

fe::DataType_t io_type(SdpaType t) {
  return t == SdpaType::BF16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF;
}

// (B, H, T, D) dims of one head slice of qkv (B, T, 3, H, D) and of out (B, T, H, D).
std::vector<int64_t> dims(const SdpaProblem& p) {
  return {p.B, p.H, p.T, p.D};
}
std::vector<int64_t> qkv_strides(const SdpaProblem& p) {
  return {p.T * 3 * p.H * p.D, p.D, 3 * p.H * p.D, 1};
}
std::vector<int64_t> out_strides(const SdpaProblem& p) {
  return {p.T * p.H * p.D, p.D, p.H * p.D, 1};
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& g, const char* name,
                                                    int64_t uid, const std::vector<int64_t>& d,
                                                    const std::vector<int64_t>& s) {
  return g.tensor(
      fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(d).set_stride(s));
}

std::shared_ptr<fe::graph::Graph> new_graph(const SdpaProblem& p) {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(io_type(p.type))
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

std::shared_ptr<fe::graph::Graph> forward_graph(const SdpaProblem& p) {
  auto g = new_graph(p);
  auto q = input(*g, "Q", kQ, dims(p), qkv_strides(p));
  auto k = input(*g, "K", kK, dims(p), qkv_strides(p));
  auto v = input(*g, "V", kV, dims(p), qkv_strides(p));
  auto opts = fe::graph::SDPA_attributes()
                  .set_name("rae_sdpa")
                  .set_generate_stats(true)
                  .set_attn_scale(p.scale);
  auto [o, stats] = g->sdpa(q, k, v, opts);
  o->set_output(true).set_uid(kO).set_dim(dims(p)).set_stride(out_strides(p));
  stats->set_output(true)
      .set_uid(kStats)
      .set_data_type(fe::DataType_t::FLOAT)
      .set_dim({p.B, p.H, p.T, 1})
      .set_stride({p.H * p.T, p.T, 1, 1});
  return g;
}

std::shared_ptr<fe::graph::Graph> backward_graph(const SdpaProblem& p) {
  auto g = new_graph(p);
  auto q = input(*g, "Q", kQ, dims(p), qkv_strides(p));
  auto k = input(*g, "K", kK, dims(p), qkv_strides(p));
  auto v = input(*g, "V", kV, dims(p), qkv_strides(p));
  auto o = input(*g, "O", kO, dims(p), out_strides(p));
  auto d_o = input(*g, "dO", kdO, dims(p), out_strides(p));
  auto stats = g->tensor(fe::graph::Tensor_attributes()
                             .set_name("Stats")
                             .set_uid(kStats)
                             .set_dim({p.B, p.H, p.T, 1})
                             .set_stride({p.H * p.T, p.T, 1, 1})
                             .set_data_type(fe::DataType_t::FLOAT));
  auto opts =
      fe::graph::SDPA_backward_attributes().set_name("rae_sdpa_bwd").set_attn_scale(p.scale);
  if (deterministic()) opts.set_deterministic_algorithm(true);
  auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, d_o, stats, opts);
  // The gradients land in one (B, T, 3, H, D) buffer, the layout of qkv.
  dq->set_output(true).set_uid(kdQ).set_dim(dims(p)).set_stride(qkv_strides(p));
  dk->set_output(true).set_uid(kdK).set_dim(dims(p)).set_stride(qkv_strides(p));
  dv->set_output(true).set_uid(kdV).set_dim(dims(p)).set_stride(qkv_strides(p));
  return g;
}

std::string describe(const SdpaProblem& p, bool fwd) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "cuDNN SDPA %s B=%lld T=%lld H=%lld D=%lld %s",
                fwd ? "forward" : "backward", (long long)p.B, (long long)p.T, (long long)p.H,
                (long long)p.D, p.type == SdpaType::BF16 ? "bf16" : "fp16");
  return buf;
}

// The cached graph for the problem, built on first use; nullptr (reason in g_last_error) when
// cuDNN cannot run it.
CachedGraph* graph_for(const SdpaProblem& p, bool fwd, cudnnHandle_t h, int dev) {
  uint32_t scale_bits;
  std::memcpy(&scale_bits, &p.scale, sizeof scale_bits);
  Key key{dev,
          fwd ? 1 : 0,
          p.B,
          p.T,
          p.H,
          p.D,
          static_cast<int>(p.type),
          scale_bits,
          !fwd && deterministic()};
  auto it = g_graphs.find(key);
  if (it == g_graphs.end()) {
    CachedGraph c;
    try {
      auto g = fwd ? forward_graph(p) : backward_graph(p);
      fe::error_t st = g->validate();
      if (st.is_good()) st = g->build_operation_graph(h);
      if (st.is_good())
        st = g->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
      if (st.is_good()) st = g->check_support(h);
      if (st.is_good()) st = g->build_plans(h, fe::BuildPlanPolicy_t::HEURISTICS_CHOICE);
      if (st.is_good()) st = g->get_workspace_size(c.workspace);
      if (st.is_good())
        c.graph = g;
      else
        c.error = describe(p, fwd) + ": " + st.get_message();
    } catch (const std::exception& e) {
      c.error = describe(p, fwd) + ": " + e.what();
    }
    if (!c.error.empty() && std::getenv("RAE_CUDNN_VERBOSE"))
      std::fprintf(stderr, "rae: %s; using the GEMM attention path\n", c.error.c_str());
    it = g_graphs.emplace(key, std::move(c)).first;
  }
  if (!it->second.graph) {
    g_last_error = it->second.error;
    return nullptr;
  }
  return &it->second;
}

bool run(const SdpaProblem& p, bool fwd, std::unordered_map<int64_t, void*>& pack) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_last_error.clear();
  if (!load_cudnn()) return false;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    g_last_error = "cudaGetDevice failed";
    return false;
  }
  cudnnHandle_t h = handle_for(dev);
  if (!h) {
    g_last_error = "cudnnCreate failed";
    return false;
  }
  CachedGraph* c = graph_for(p, fwd, h, dev);
  if (!c) return false;
  try {
    Tensor ws;
    if (c->workspace > 0)
      ws = Tensor::empty({(c->workspace + 3) / 4}, DType::F32, Device::cuda(dev));
    // This thread's current stream: the legacy one, or a CUDA graph capture's.
    if (fe::detail::set_stream(h, cur_stream()) != CUDNN_STATUS_SUCCESS) {
      g_last_error = describe(p, fwd) + ": cudnnSetStream failed";
      return false;
    }
    fe::error_t st = c->graph->execute(h, pack, ws.defined() ? ws.raw() : nullptr);
    if (st.is_bad()) {
      g_last_error = describe(p, fwd) + ": execute: " + st.get_message();
      return false;
    }
  } catch (const std::exception& e) {
    g_last_error = describe(p, fwd) + ": execute: " + e.what();
    return false;
  }
  return true;
}

}  // namespace

bool sdpa_built() {
  return true;
}

int64_t sdpa_backend_version() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!load_cudnn()) return 0;
  try {
    return static_cast<int64_t>(fe::detail::get_backend_version());
  } catch (const std::exception&) {
    return 0;
  }
}

bool sdpa_forward(const SdpaProblem& p, const void* qkv, void* out, float* lse) {
  const size_t es = 2;  // bf16 / fp16 bytes
  const char* base = static_cast<const char*>(qkv);
  std::unordered_map<int64_t, void*> pack = {{kQ, const_cast<char*>(base)},
                                             {kK, const_cast<char*>(base + es * p.H * p.D)},
                                             {kV, const_cast<char*>(base + es * 2 * p.H * p.D)},
                                             {kO, out},
                                             {kStats, lse}};
  return run(p, true, pack);
}

bool sdpa_backward(const SdpaProblem& p, const void* qkv, const void* out, const void* dout,
                   const float* lse, void* dqkv) {
  const size_t es = 2;
  const char* base = static_cast<const char*>(qkv);
  char* dbase = static_cast<char*>(dqkv);
  std::unordered_map<int64_t, void*> pack = {{kQ, const_cast<char*>(base)},
                                             {kK, const_cast<char*>(base + es * p.H * p.D)},
                                             {kV, const_cast<char*>(base + es * 2 * p.H * p.D)},
                                             {kO, const_cast<void*>(out)},
                                             {kdO, const_cast<void*>(dout)},
                                             {kStats, const_cast<float*>(lse)},
                                             {kdQ, dbase},
                                             {kdK, dbase + es * p.H * p.D},
                                             {kdV, dbase + es * 2 * p.H * p.D}};
  return run(p, false, pack);
}

#endif  // RAE_WITH_CUDNN_FRONTEND

}  // namespace rae::ops::cuda_detail
