// NcclCommunicator (CUDA builds only; see distributed/nccl_communicator.h).
#include "distributed/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "distributed/watchdog.h"

namespace rae::distributed {
namespace {

void cuda_check(cudaError_t e, const char* what) {
  RAE_CHECK(e == cudaSuccess, "CUDA call ", what, " failed: ", cudaGetErrorString(e));
}
void nccl_check(ncclResult_t r, const char* what, int rank) {
  RAE_CHECK(r == ncclSuccess, "NCCL call ", what, " failed on rank ", rank, ": ",
            ncclGetErrorString(r));
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::BF16:
      return ncclBfloat16;
    case DType::F16:
      return ncclFloat16;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
    case DType::U8:
      return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  return op == ReduceOp::Avg ? ncclAvg : ncclSum;
}

// One collective in flight: the event recorded after it on the communication stream.
struct Pending {
  watchdog::CollectiveInfo info;
  cudaEvent_t done = nullptr;
  int64_t start_ns = 0;
  std::vector<Tensor> keep;  // released on the issuing thread once complete
  std::atomic<bool> complete{false};
};

class NcclCommunicator;

class NcclWork : public WorkImpl {
 public:
  NcclWork(NcclCommunicator* comm, std::shared_ptr<Pending> p) : comm_(comm), p_(std::move(p)) {}
  bool test() override;
  void wait() override;         // orders the compute stream after the collective
  void synchronize() override;  // blocks the host (under the watchdog)

 private:
  NcclCommunicator* comm_;
  std::shared_ptr<Pending> p_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> boot, int device) : boot_(std::move(boot)) {
    topo_ = boot_->topology();
    label_ = boot_->label();
    int count = 0;
    cuda_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    RAE_CHECK(count > 0, "NCCL backend: no GPU visible on rank ", rank());
    device_ = device >= 0 ? device : topo_.physical_local_rank % count;
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");

    // Unique id from rank 0 over MPI (guarded), then a guarded barrier so that every rank is
    // present before the blocking ncclCommInitRank.
    ncclUniqueId id;
    if (rank() == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId", rank());
    Tensor id_bytes = Tensor::empty({static_cast<int64_t>(sizeof(id))}, DType::U8);
    std::memcpy(id_bytes.raw(), &id, sizeof(id));
    boot_->broadcast(id_bytes, 0);
    std::memcpy(&id, id_bytes.raw(), sizeof(id));
    boot_->barrier();
    nccl_check(ncclCommInitRank(&comm_, size(), id, rank()), "ncclCommInitRank", rank());

    hook_id_ = watchdog::add_abort_hook([c = comm_] { ncclCommAbort(c); });
    thread_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    watchdog::remove_abort_hook(hook_id_);
    cudaStreamSynchronize(stream_);
    reap();
    // A communicator the watchdog aborted is not destroyed again (the job is ending anyway).
    ncclCommDestroy(comm_);
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
    cudaStreamDestroy(stream_);
  }

  const char* backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(device_); }
  void set_compute_stream(void* s) override { compute_ = static_cast<cudaStream_t>(s); }
  cudaStream_t compute_stream() const { return compute_; }

  Work all_reduce_async(const Tensor& t, ReduceOp op) override {
    check_collective_tensor(t, device(), "all_reduce", "tensor", *this);
    RAE_CHECK(dtype_reducible(t.dtype()), label_, ".all_reduce: cannot reduce ",
              dtype_name(t.dtype()));
    return launch(CollectiveKind::AllReduce, t.nbytes(), t.dtype(), {t}, [&](cudaStream_t s) {
      return ncclAllReduce(t.raw(), t.raw(), t.numel(), nccl_type(t.dtype()), nccl_op(op), comm_,
                           s);
    });
  }

  Work reduce_scatter_async(const Tensor& in, const Tensor& out, ReduceOp op) override {
    check_collective_tensor(in, device(), "reduce_scatter", "input", *this);
    check_collective_tensor(out, device(), "reduce_scatter", "output", *this);
    RAE_CHECK(in.dtype() == out.dtype() && dtype_reducible(in.dtype()), label_,
              ".reduce_scatter: bad dtypes ", in.str(), " -> ", out.str());
    RAE_CHECK(in.numel() == out.numel() * size(), label_, ".reduce_scatter: input has ", in.numel(),
              " elements, expected ", size(), " x ", out.numel());
    // NCCL's in-place form: the output is this rank's chunk of the input. Other overlaps stage.
    const char* own = static_cast<const char*>(in.raw()) + rank() * out.nbytes();
    Tensor target = out;
    if (out.raw() != own && overlaps(in, out))
      target = Tensor::empty(out.shape(), out.dtype(), device());
    Work w = launch(CollectiveKind::ReduceScatter, in.nbytes(), in.dtype(), {in, out, target},
                    [&](cudaStream_t s) {
                      return ncclReduceScatter(in.raw(), target.raw(), out.numel(),
                                               nccl_type(in.dtype()), nccl_op(op), comm_, s);
                    });
    if (target.raw() != out.raw()) {
      w.wait();
      Tensor(out).copy_from(target);
    }
    return w;
  }

  Work all_gather_async(const Tensor& in, const Tensor& out) override {
    check_collective_tensor(in, device(), "all_gather", "input", *this);
    check_collective_tensor(out, device(), "all_gather", "output", *this);
    RAE_CHECK(in.dtype() == out.dtype() && out.numel() == in.numel() * size(), label_,
              ".all_gather: bad shapes ", in.str(), " -> ", out.str());
    const char* own = static_cast<const char*>(out.raw()) + rank() * in.nbytes();
    RAE_CHECK(in.raw() == own || !overlaps(in, out), label_,
              ".all_gather: input overlaps the output but is not this rank's chunk");
    return launch(
        CollectiveKind::AllGather, out.nbytes(), in.dtype(), {in, out}, [&](cudaStream_t s) {
          return ncclAllGather(in.raw(), out.raw(), in.numel(), nccl_type(in.dtype()), comm_, s);
        });
  }

  Work broadcast_async(const Tensor& t, int root) override {
    check_collective_tensor(t, device(), "broadcast", "tensor", *this);
    RAE_CHECK(root >= 0 && root < size(), label_, ".broadcast: root ", root, " out of range");
    return launch(CollectiveKind::Broadcast, t.nbytes(), t.dtype(), {t}, [&](cudaStream_t s) {
      return ncclBroadcast(t.raw(), t.raw(), t.numel(), nccl_type(t.dtype()), root, comm_, s);
    });
  }

  Work barrier_async() override {
    if (!barrier_buf_.defined()) barrier_buf_ = Tensor::zeros({1}, DType::F32, device());
    return launch(CollectiveKind::Barrier, 4, DType::F32, {barrier_buf_}, [&](cudaStream_t s) {
      return ncclAllReduce(barrier_buf_.raw(), barrier_buf_.raw(), 1, ncclFloat32, ncclSum, comm_,
                           s);
    });
  }

  std::unique_ptr<Communicator> split(int color, int key, const std::string& label) override {
    auto sub = boot_->split_mpi(color, key, label);
    auto c = std::make_unique<NcclCommunicator>(std::move(sub), device_);
    c->set_compute_stream(compute_);
    return c;
  }

  // Host-side poll used by NcclWork::synchronize: also surfaces asynchronous NCCL errors.
  void check_async_error(const watchdog::CollectiveInfo& info) {
    ncclResult_t err = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &err) == ncclSuccess && err != ncclSuccess &&
        err != ncclInProgress) {
      watchdog::fire(info, 0, std::string("NCCL asynchronous error: ") + ncclGetErrorString(err));
    }
  }

 private:
  static bool overlaps(const Tensor& a, const Tensor& b) {
    const char* a0 = static_cast<const char*>(a.raw());
    const char* b0 = static_cast<const char*>(b.raw());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
  }

  cudaEvent_t get_event() {
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
    cudaEvent_t e;
    cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    return e;
  }

  // Releases completed collectives (their tensors and events) on the issuing thread.
  void reap() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<Pending>> still;
    for (auto& p : pending_) {
      if (p->complete || cudaEventQuery(p->done) == cudaSuccess) {
        p->complete = true;
        p->keep.clear();
        free_events_.push_back(p->done);
        p->done = nullptr;
        watchdog::note_completed(p->info);
      } else {
        still.push_back(p);
      }
    }
    pending_.swap(still);
  }

  template <typename Fn>
  Work launch(CollectiveKind kind, size_t bytes, DType dtype, std::vector<Tensor> keep,
              Fn&& enqueue) {
    reap();
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    auto p = std::make_shared<Pending>();
    p->info = {label_.c_str(), kind, ++seq_, static_cast<int64_t>(bytes), dtype, rank(), size()};
    p->keep = std::move(keep);
    cudaEvent_t ready = get_event();
    cuda_check(cudaEventRecord(ready, compute_), "cudaEventRecord(compute)");
    cuda_check(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent(comm)");
    free_events_.push_back(ready);  // reusable once recorded again: waits capture the state
    watchdog::note_issued(p->info);
    nccl_check(enqueue(stream_), collective_name(kind), rank());
    {
      std::lock_guard<std::mutex> lock(mu_);
      p->done = get_event();
      cuda_check(cudaEventRecord(p->done, stream_), "cudaEventRecord(comm)");
      p->start_ns = now_ns();
      pending_.push_back(p);
    }
    return Work(std::make_shared<NcclWork>(this, p));
  }

  // Watchdog thread: a collective outstanding past the deadline, or an asynchronous NCCL
  // error, ends the job (ncclCommAbort through the abort hook, then MPI_Abort).
  void watch() {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard<std::mutex> lock(mu_);
      const int64_t t = now_ns();
      for (auto& p : pending_) {
        if (p->complete || !p->done) continue;
        if (cudaEventQuery(p->done) == cudaSuccess) {
          p->complete = true;
          continue;
        }
        double waited = (t - p->start_ns) * 1e-9;
        if (waited > watchdog::timeout()) watchdog::fire(p->info, waited, "(NCCL watchdog thread)");
      }
      if (!pending_.empty()) check_async_error(pending_.front()->info);
    }
  }

  std::unique_ptr<MpiCommunicator> boot_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, compute_ = nullptr;
  int device_ = 0;
  int64_t seq_ = 0;
  int hook_id_ = 0;
  std::vector<cudaEvent_t> free_events_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Pending>> pending_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Tensor barrier_buf_;
  friend class NcclWork;
};

bool NcclWork::test() {
  if (p_->complete) return true;
  std::lock_guard<std::mutex> lock(comm_->mu_);
  if (p_->done && cudaEventQuery(p_->done) == cudaSuccess) p_->complete = true;
  return p_->complete;
}

void NcclWork::wait() {
  std::lock_guard<std::mutex> lock(comm_->mu_);
  if (p_->complete || !p_->done) return;
  cuda_check(cudaStreamWaitEvent(comm_->compute_stream(), p_->done, 0),
             "cudaStreamWaitEvent(compute)");
}

void NcclWork::synchronize() {
  watchdog::wait_until(
      [this] {
        comm_->check_async_error(p_->info);
        return test();
      },
      p_->info);
}

}  // namespace

bool nccl_compiled() {
  return true;
}

std::unique_ptr<Communicator> make_nccl_communicator(MpiCommunicator& boot, int device) {
  // A private MPI communicator (same ranks and order) for the unique id and later splits.
  auto own = boot.split_mpi(0, boot.rank(), boot.label());
  return std::make_unique<NcclCommunicator>(std::move(own), device);
}

}  // namespace rae::distributed
