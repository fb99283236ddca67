#include "data/encode_pipeline.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace rae::data {

namespace {

#ifdef RAE_WITH_CUDA
void cuda_ok(cudaError_t e, const char* what) {
  RAE_CHECK(e == cudaSuccess, "cache encode pipeline: ", what, ": ", cudaGetErrorString(e));
}

// Page-locked host memory (asynchronous copies need it), freed with its last tensor.
Tensor pinned_f32(const Shape& shape) {
  void* p = nullptr;
  cuda_ok(
      cudaHostAlloc(&p, static_cast<size_t>(shape.numel()) * sizeof(float), cudaHostAllocDefault),
      "cudaHostAlloc");
  std::shared_ptr<void> keep(p, [](void* q) { cudaFreeHost(q); });
  return Tensor::from_blob(p, shape, DType::F32, Device::cpu(), keep);
}
#endif

using Clock = std::chrono::steady_clock;

}  // namespace

struct EncodePipeline::Impl {
  struct Slot {
    Tensor in_host;   // (views * B, 3, S, S): plain views at [0, B), flips at [B, 2B)
    Tensor in_dev;    // the same on the device (CUDA)
    Tensor out_host;  // (views * B, T, C) latents back from the device (CUDA)
    Tensor z;         // the forward's output, alive until its copy to the host is done
    std::vector<int32_t> labels;
    int64_t n = 0;
    double host_busy_s = 0;  // CPU: the forward's host time
    const Sink* sink = nullptr;
#ifdef RAE_WITH_CUDA
    cudaEvent_t uploaded = nullptr, started = nullptr, computed = nullptr, downloaded = nullptr;
#endif
  };

  // A queue of slots between two threads; nullptr is the stop signal.
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Slot*> q;
    void push(Slot* s) {
      {
        std::lock_guard<std::mutex> l(mu);
        q.push_back(s);
      }
      cv.notify_one();
    }
    Slot* pop() {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return !q.empty(); });
      Slot* s = q.front();
      q.pop_front();
      return s;
    }
  };

  const models::VitEncoder& enc;
  const int64_t B, views, S, T, C, plane;
  const Device dev;
  std::vector<std::unique_ptr<Slot>> slots;
  Queue free_q, encode_q, write_q;
  Slot* filling = nullptr;
  Sink sink;
  std::thread encoder_thread, writer_thread;
#ifdef RAE_WITH_CUDA
  cudaStream_t copy_stream = nullptr;
#endif

  std::mutex mu;  // guards the fields below
  std::condition_variable done_cv;
  int64_t submitted = 0, finished = 0, images = 0;
  double busy_s = 0;
  std::exception_ptr error;
  bool cancelled = false;

  Impl(const models::VitEncoder& e, int64_t batch, bool flip, int nslots)
      : enc(e),
        B(batch),
        views(flip ? 2 : 1),
        S(e.config().input_size),
        T(e.config().tokens()),
        C(e.config().hidden),
        plane(3 * e.config().input_size * e.config().input_size),
        dev(e.device()) {
    RAE_CHECK(B >= 1 && nslots >= 2, "cache encode pipeline: batch ", B, ", slots ", nslots);
#ifdef RAE_WITH_CUDA
    if (dev.is_cuda()) {
      cuda_ok(cudaSetDevice(dev.index), "cudaSetDevice");
      // Non-blocking: no implicit ordering with the legacy default stream the encoder runs on;
      // the events below order the copies against the forwards.
      cuda_ok(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking), "cudaStreamCreate");
    }
#endif
    for (int i = 0; i < nslots; ++i) {
      auto s = std::make_unique<Slot>();
      const Shape in_shape{views * B, 3, S, S};
#ifdef RAE_WITH_CUDA
      if (dev.is_cuda()) {
        s->in_host = pinned_f32(in_shape);
        s->out_host = pinned_f32({views * B, T, C});
        s->in_dev = Tensor::empty(in_shape, DType::F32, dev);
        for (cudaEvent_t* ev : {&s->uploaded, &s->started, &s->computed, &s->downloaded})
          cuda_ok(cudaEventCreate(ev), "cudaEventCreate");
      }
#endif
      if (!s->in_host.defined()) s->in_host = Tensor::empty(in_shape);
      free_q.push(s.get());
      slots.push_back(std::move(s));
    }
    encoder_thread = std::thread([this] { encoder_loop(); });
    writer_thread = std::thread([this] { writer_loop(); });
  }

  ~Impl() {
    encode_q.push(nullptr);  // the encoder thread passes the stop on to the writer
    encoder_thread.join();
    writer_thread.join();
#ifdef RAE_WITH_CUDA
    for (auto& s : slots)
      for (cudaEvent_t ev : {s->uploaded, s->started, s->computed, s->downloaded})
        if (ev) cudaEventDestroy(ev);
    if (copy_stream) cudaStreamDestroy(copy_stream);
#endif
  }

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> l(mu);
    if (!error) error = e;
  }
  bool skipping() {
    std::lock_guard<std::mutex> l(mu);
    return error || cancelled;
  }
  void rethrow() {
    std::lock_guard<std::mutex> l(mu);
    if (error) std::rethrow_exception(error);
  }

  // The batch's input rows: plain views then flips, contiguous (a partial batch moves its flips
  // down next to its plain views, as the synchronous loop laid them out).
  int64_t pack(Slot& s) {
    if (views == 2 && s.n < B) {
      float* base = s.in_host.data<float>();
      std::memmove(base + s.n * plane, base + B * plane, s.n * plane * sizeof(float));
    }
    return views * s.n;
  }

  void encode(Slot& s) {
    const int64_t rows = pack(s);
#ifdef RAE_WITH_CUDA
    if (dev.is_cuda()) {
      cuda_ok(cudaSetDevice(dev.index), "cudaSetDevice");
      cuda_ok(cudaMemcpyAsync(s.in_dev.raw(), s.in_host.raw(), rows * plane * sizeof(float),
                              cudaMemcpyHostToDevice, copy_stream),
              "upload");
      cuda_ok(cudaEventRecord(s.uploaded, copy_stream), "cudaEventRecord");
      cuda_ok(cudaStreamWaitEvent(nullptr, s.uploaded, 0), "cudaStreamWaitEvent");
      cuda_ok(cudaEventRecord(s.started, nullptr), "cudaEventRecord");
      s.z = enc.forward(s.in_dev.narrow(0, 0, rows));  // (rows, T, C), queued on the GPU
      cuda_ok(cudaEventRecord(s.computed, nullptr), "cudaEventRecord");
      cuda_ok(cudaStreamWaitEvent(copy_stream, s.computed, 0), "cudaStreamWaitEvent");
      cuda_ok(cudaMemcpyAsync(s.out_host.raw(), s.z.raw(), s.z.nbytes(), cudaMemcpyDeviceToHost,
                              copy_stream),
              "download");
      cuda_ok(cudaEventRecord(s.downloaded, copy_stream), "cudaEventRecord");
      return;
    }
#endif
    const auto t0 = Clock::now();
    s.z = enc.forward(s.in_host.narrow(0, 0, rows));
    s.host_busy_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }

  void encoder_loop() {
    while (Slot* s = encode_q.pop()) {
      if (!skipping()) {
        try {
          encode(*s);
        } catch (...) {
          fail(std::current_exception());
        }
      }
      write_q.push(s);
    }
    write_q.push(nullptr);
  }

  void write(Slot& s) {
    double busy = s.host_busy_s;
    Tensor z = s.z;
#ifdef RAE_WITH_CUDA
    if (dev.is_cuda()) {
      cuda_ok(cudaEventSynchronize(s.downloaded), "cudaEventSynchronize");
      float ms = 0;
      cuda_ok(cudaEventElapsedTime(&ms, s.started, s.computed), "cudaEventElapsedTime");
      busy = ms / 1e3;
      z = s.out_host.narrow(0, 0, views * s.n);
    }
#endif
    s.z = Tensor();  // the device block goes back to the allocator only after its copy
    Tensor labels = Tensor::from_blob(s.labels.data(), {s.n}, DType::I32, Device::cpu(), nullptr);
    (*s.sink)(z.narrow(0, 0, s.n), views == 2 ? z.narrow(0, s.n, s.n) : Tensor(), labels);
    std::lock_guard<std::mutex> l(mu);
    busy_s += busy;
    images += s.n;
  }

  void writer_loop() {
    while (Slot* s = write_q.pop()) {
      if (!skipping()) {
        try {
          write(*s);
        } catch (...) {
          fail(std::current_exception());
        }
      }
      s->z = Tensor();
      s->n = 0;
      s->labels.clear();
      free_q.push(s);
      {
        std::lock_guard<std::mutex> l(mu);
        ++finished;
      }
      done_cv.notify_all();
    }
  }

  void submit() {
    if (!filling || filling->n == 0) return;
    filling->sink = &sink;
    {
      std::lock_guard<std::mutex> l(mu);
      ++submitted;
    }
    encode_q.push(filling);
    filling = nullptr;
  }

  void wait_all() {
    std::unique_lock<std::mutex> l(mu);
    done_cv.wait(l, [&] { return finished == submitted; });
  }
};

EncodePipeline::EncodePipeline(const models::VitEncoder& encoder, int64_t batch, bool flip,
                               int slots)
    : impl_(std::make_unique<Impl>(encoder, batch, flip, slots)) {}

EncodePipeline::~EncodePipeline() {
  if (impl_) cancel();
}

void EncodePipeline::cancel() noexcept {
  Impl& p = *impl_;
  {
    std::lock_guard<std::mutex> l(p.mu);
    p.cancelled = true;  // what is still in flight is dropped, not written
  }
  p.wait_all();
  if (p.filling) {
    p.filling->n = 0;
    p.filling->labels.clear();
    p.free_q.push(p.filling);
    p.filling = nullptr;
  }
}

void EncodePipeline::begin(Sink sink) {
  Impl& p = *impl_;
  p.wait_all();
  p.rethrow();
  std::lock_guard<std::mutex> l(p.mu);
  p.cancelled = false;
  p.sink = std::move(sink);
}

void EncodePipeline::add(const float* plain, const float* flipped, int32_t label) {
  Impl& p = *impl_;
  if (!p.filling) {
    p.filling = p.free_q.pop();  // waits while every slot is in flight
    p.rethrow();
  }
  Impl::Slot& s = *p.filling;
  float* base = s.in_host.data<float>();
  std::memcpy(base + s.n * p.plane, plain, p.plane * sizeof(float));
  if (p.views == 2) std::memcpy(base + (p.B + s.n) * p.plane, flipped, p.plane * sizeof(float));
  s.labels.push_back(label);
  if (++s.n == p.B) p.submit();
}

void EncodePipeline::end() {
  impl_->submit();
  impl_->wait_all();
  impl_->rethrow();
}

double EncodePipeline::busy_seconds() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->busy_s;
}

int64_t EncodePipeline::images() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->images;
}

}  // namespace rae::data
