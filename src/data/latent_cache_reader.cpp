#include "data/latent_cache_reader.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <tuple>

#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/latent_cache_shard.h"
#include "data/latent_cache_verify.h"

namespace rae::cache {

namespace {

// 64 random bits, element i of the stream k.
uint64_t random_u64(const rng::Key& k, uint64_t i) {
  rng::u32x4 b = rng::block_bits(k, static_cast<uint32_t>(i >> 1));
  int o = static_cast<int>(i & 1) * 2;
  return (static_cast<uint64_t>(b.v[o]) << 32) | b.v[o + 1];
}

// Uniform integer in [0, n) from 64 random bits (multiply-shift; bias < n / 2^64).
uint64_t below(uint64_t r, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(r) * n) >> 64);
}

// Deterministic Fisher-Yates: draw d (d = 0, 1, ...) picks the partner of position n-1-d.
template <typename T>
void fisher_yates(T* a, int64_t n, const rng::Key& k) {
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t j =
        below(random_u64(k, static_cast<uint64_t>(n - 1 - i)), static_cast<uint64_t>(i + 1));
    std::swap(a[i], a[j]);
  }
}

// Storage bytes -> f32 for n elements.
void to_f32(StorageDType dt, const void* src, float* dst, int64_t n) {
  if (dt == StorageDType::F32) {
    std::memcpy(dst, src, n * sizeof(float));
  } else if (dt == StorageDType::BF16) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    uint32_t* d = reinterpret_cast<uint32_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint32_t>(s[i]) << 16;
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_bits_to_f32(s[i]);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Recycles the batch buffers: fresh multi-MB allocations are mmap'ed by malloc and page-faulted
// on every batch, which costs more than the reads themselves. Buffers return here when the last
// tensor viewing them dies (even after the reader is gone: the deleter keeps the pool alive).
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(size_t bytes, size_t keep) : bytes_((bytes + 63) / 64 * 64), keep_(keep) {}
  ~BufferPool() {
    for (void* p : free_) std::free(p);
  }
  Tensor acquire(const Shape& shape, DType dtype) {
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!free_.empty()) {
        p = free_.back();
        free_.pop_back();
      }
    }
    if (!p) p = std::aligned_alloc(64, bytes_ ? bytes_ : 64);
    RAE_CHECK(p, "cache reader: out of host memory allocating ", bytes_, " bytes");
    std::shared_ptr<void> owner(p, [pool = shared_from_this()](void* q) { pool->release(q); });
    return Tensor::from_blob(p, shape, dtype, Device::cpu(), owner);
  }

 private:
  void release(void* p) {
    std::lock_guard<std::mutex> lk(mu_);
    if (free_.size() < keep_)
      free_.push_back(p);
    else
      std::free(p);
  }
  size_t bytes_, keep_;
  std::mutex mu_;
  std::vector<void*> free_;
};

constexpr size_t kMaxGapBytes = 64 << 10;  // read through gaps up to this size
constexpr size_t kMaxRunBytes = 64 << 20;  // longest single read (bounds the staging buffer)

}  // namespace

int64_t auto_block_rows(const LatentLayout& layout) {
  size_t row = layout.row_bytes() * (layout.has_flip ? 2 : 1);
  return std::max<int64_t>(1, static_cast<int64_t>((kBlockTargetBytes + row - 1) / row));
}

std::vector<int64_t> cache_epoch_order(const Manifest& m, uint64_t seed, int64_t epoch,
                                       int64_t block_rows, int64_t window_blocks, bool shuffle) {
  std::vector<int64_t> order(m.total_samples);
  if (!shuffle) {
    std::iota(order.begin(), order.end(), 0);
    return order;
  }
  RAE_CHECK(block_rows >= 1 && window_blocks >= 1,
            "cache_epoch_order: block_rows and window_blocks must be >= 1");
  struct Block {
    int64_t start, len;
  };
  std::vector<Block> blocks;
  for (const ShardInfo& s : m.shards)
    for (int64_t r = 0; r < s.samples; r += block_rows)
      blocks.push_back({s.first_index + r, std::min(block_rows, s.samples - r)});
  fisher_yates(blocks.data(), static_cast<int64_t>(blocks.size()),
               rng::Key{seed, rng::Purpose::Shuffle, static_cast<uint64_t>(epoch), 0});
  int64_t o = 0;
  for (const Block& b : blocks)
    for (int64_t i = 0; i < b.len; ++i) order[o++] = b.start + i;
  const int64_t window = block_rows * window_blocks;
  for (int64_t w = 0; w * window < m.total_samples; ++w) {
    int64_t len = std::min(window, m.total_samples - w * window);
    fisher_yates(order.data() + w * window, len,
                 rng::Key{seed, rng::Purpose::Shuffle, static_cast<uint64_t>(epoch),
                          static_cast<uint64_t>(1 + w)});
  }
  return order;
}

Batch Batch::micro(int64_t i) const {
  const int64_t mb = micro_batch > 0 ? micro_batch : size();
  RAE_CHECK(i >= 0 && (i + 1) * mb <= size(), "Batch::micro: micro-batch ", i, " of ", num_micro());
  Batch b = *this;
  b.latents = latents.narrow(0, i * mb, mb);
  b.labels = labels.narrow(0, i * mb, mb);
  b.indices = indices.narrow(0, i * mb, mb);
  b.flipped = flipped.narrow(0, i * mb, mb);
  b.micro_batch = 0;
  return b;
}

struct LatentCacheReader::Impl {
  std::string dir;
  Manifest manifest;
  ReaderOptions opt;
  std::vector<std::unique_ptr<ShardFile>> shards;
  int64_t local = 0, steps = 0, brows = 1;
  bool flips = false;
  std::shared_ptr<BufferPool> latent_pool;

  std::mutex order_mu;
  std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> orders;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> workers;
  DataPosition base;
  int64_t assigned = 0, consumed = 0;
  bool stopping = false;
  std::map<int64_t, Batch> ready;
  std::map<int64_t, std::exception_ptr> failed;

  DataPosition at(int64_t t) const {
    int64_t linear = base.epoch * steps + base.step + t;
    return {linear / steps, linear % steps};
  }

  bool flip_of(int64_t epoch, int64_t id) const {
    if (!flips) return false;
    rng::Key k{opt.seed, rng::Purpose::Flip, static_cast<uint64_t>(epoch),
               static_cast<uint64_t>(id)};
    return rng::uniform_at(k, 0) < 0.5f;
  }

  std::shared_ptr<const std::vector<int64_t>> order(int64_t epoch) {
    std::lock_guard<std::mutex> lk(order_mu);
    auto it = orders.find(epoch);
    if (it != orders.end()) return it->second;
    auto o = std::make_shared<const std::vector<int64_t>>(
        cache_epoch_order(manifest, opt.seed, epoch, brows, opt.window_blocks, opt.shuffle));
    orders[epoch] = o;
    while (orders.size() > 4) orders.erase(orders.begin());
    return o;
  }

  // Reads samples ids[k] (view flip[k]) into out + k * elements, as runs of consecutive rows.
  void fill(const std::vector<int64_t>& ids, const std::vector<uint8_t>& flip, float* out) const {
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t elems = manifest.layout.elements();
    const size_t row_bytes = manifest.layout.row_bytes();
    struct Item {
      int64_t shard, view, row, slot;
    };
    std::vector<Item> items(n);
    for (int64_t k = 0; k < n; ++k) {
      size_t s = manifest.shard_of(ids[k]);
      items[k] = {static_cast<int64_t>(s), flip[k] ? 1 : 0, ids[k] - manifest.shards[s].first_index,
                  k};
    }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      return std::tie(a.shard, a.view, a.row) < std::tie(b.shard, b.view, b.row);
    });
    const int64_t max_gap = static_cast<int64_t>(kMaxGapBytes / row_bytes);
    const int64_t max_run = std::max<int64_t>(1, static_cast<int64_t>(kMaxRunBytes / row_bytes));
    thread_local std::vector<char> staging;
    for (int64_t a = 0; a < n;) {
      int64_t b = a + 1;
      while (b < n && items[b].shard == items[a].shard && items[b].view == items[a].view &&
             items[b].row - items[b - 1].row - 1 <= max_gap &&
             items[b].row - items[a].row < max_run)
        ++b;
      const int64_t row0 = items[a].row, rows = items[b - 1].row - row0 + 1;
      // Grown, never shrunk: resize() to a larger size zero-fills, which cost more than the reads.
      if (staging.size() < rows * row_bytes) staging.resize(rows * row_bytes);
      shards[items[a].shard]->read_rows(static_cast<View>(items[a].view), row0, rows,
                                        staging.data());
      for (int64_t k = a; k < b; ++k)
        to_f32(manifest.layout.dtype, staging.data() + (items[k].row - row0) * row_bytes,
               out + items[k].slot * elems, elems);
      a = b;
    }
  }

  Batch assemble(DataPosition pos) {
    auto t0 = std::chrono::steady_clock::now();
    auto ord = order(pos.epoch);
    const int64_t begin = pos.step * opt.global_batch + opt.rank * local;
    Batch b;
    b.position = pos;
    b.micro_batch = opt.micro_batch;
    b.latents = latent_pool->acquire({local, manifest.layout.tokens(), manifest.layout.channels},
                                     DType::F32);
    b.labels = Tensor::empty({local}, DType::I32);
    b.indices = Tensor::empty({local}, DType::I64);
    b.flipped = Tensor::empty({local}, DType::U8);
    std::vector<int64_t> ids(ord->begin() + begin, ord->begin() + begin + local);
    std::vector<uint8_t> fl(local);
    for (int64_t k = 0; k < local; ++k) {
      fl[k] = flip_of(pos.epoch, ids[k]) ? 1 : 0;
      size_t s = manifest.shard_of(ids[k]);
      b.labels.data<int32_t>()[k] = shards[s]->labels()[ids[k] - manifest.shards[s].first_index];
      b.indices.data<int64_t>()[k] = ids[k];
      b.flipped.data<uint8_t>()[k] = fl[k];
    }
    fill(ids, fl, b.latents.data<float>());
    b.read_seconds = seconds_since(t0);
    return b;
  }

  void worker_loop() {
    h5::quiet_errors();
    for (;;) {
      int64_t t;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stopping || assigned < consumed + opt.prefetch; });
        if (stopping) return;
        t = assigned++;
      }
      Batch b;
      std::exception_ptr err;
      try {
        b = assemble(at(t));
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu);
        if (err)
          failed[t] = err;
        else
          ready[t] = std::move(b);
      }
      cv.notify_all();
    }
  }

  // Shards without per-row checksums (ShardFile) are verified whole against the manifest's xxh64
  // before any of their rows is used, on `threads` threads: a one-time cost at open, bounded by
  // the disk, that caches written by ShardWriter do not pay.
  void verify_legacy_shards() {
    std::vector<size_t> todo;
    uint64_t bytes = 0;
    for (size_t i = 0; i < shards.size(); ++i)
      if (!shards[i]->has_row_checksums()) {
        todo.push_back(i);
        bytes += manifest.shards[i].bytes;
      }
    if (todo.empty()) return;
    log::info("cache '", dir, "': ", todo.size(), " shard(s) without per-row checksums; verifying ",
              bytes / 1e6, " MB against the manifest's xxh64 before reading");
    std::vector<std::string> problems(todo.size());
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < std::max(1, opt.threads); ++t)
      pool.emplace_back([&] {
        for (size_t k; (k = next++) < todo.size();)
          problems[k] = shard_file_problem(dir, manifest.shards[todo[k]]);
      });
    for (auto& t : pool) t.join();
    for (const std::string& p : problems)
      if (!p.empty())
        RAE_THROW(p, " (refusing to read it; `rae cache verify ", dir, "` lists all)");
  }

  void start(DataPosition pos) {
    RAE_CHECK(pos.epoch >= 0 && pos.step >= 0 && pos.step < steps, "cache reader: position (epoch ",
              pos.epoch, ", step ", pos.step, ") is invalid: an epoch of '", dir, "' has ", steps,
              " steps");
    base = pos;
    assigned = consumed = 0;
    ready.clear();
    failed.clear();
    stopping = false;
    for (int i = 0; i < opt.threads; ++i) workers.emplace_back([this] { worker_loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }
};

LatentCacheReader::LatentCacheReader(const std::string& dir, const ReaderOptions& options,
                                     DataPosition start)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.dir = dir;
  m.opt = options;
  m.manifest = Manifest::load(dir);
  const ReaderOptions& o = m.opt;
  RAE_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "cache reader: rank ",
            o.rank, " is not in [0, ", o.world_size, ")");
  RAE_CHECK(o.global_batch > 0 && o.global_batch % o.world_size == 0, "cache reader: global batch ",
            o.global_batch, " must be positive and divisible by the world size ", o.world_size);
  m.local = o.global_batch / o.world_size;
  RAE_CHECK(o.micro_batch >= 0 && (o.micro_batch == 0 || m.local % o.micro_batch == 0),
            "cache reader: micro-batch ", o.micro_batch, " does not divide the local batch ",
            m.local);
  RAE_CHECK(o.prefetch >= 1 && o.threads >= 1 && o.window_blocks >= 1 && o.block_rows >= 0,
            "cache reader: prefetch, threads and window_blocks must be >= 1, block_rows >= 0");
  m.steps = m.manifest.total_samples / o.global_batch;
  RAE_CHECK(m.steps >= 1, "cache '", dir, "' has ", m.manifest.total_samples,
            " samples, fewer than one global batch of ", o.global_batch);
  m.brows = o.block_rows > 0 ? o.block_rows : auto_block_rows(m.manifest.layout);
  m.flips = o.use_flip && m.manifest.layout.has_flip;
  // Enough buffers for the prefetched batches, the one being assembled per thread and a few held
  // by the consumer.
  m.latent_pool =
      std::make_shared<BufferPool>(m.local * m.manifest.layout.elements() * sizeof(float),
                                   static_cast<size_t>(o.prefetch + o.threads + 4));
  for (const ShardInfo& s : m.manifest.shards)
    m.shards.push_back(std::make_unique<ShardFile>(dir, m.manifest, s, o.direct_io));
  m.verify_legacy_shards();
  m.start(start);
}

LatentCacheReader::~LatentCacheReader() {
  impl_->stop();
}

Batch LatentCacheReader::next() {
  Impl& m = *impl_;
  auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(m.mu);
  m.cv.wait(lk, [&] { return m.ready.count(m.consumed) || m.failed.count(m.consumed); });
  auto f = m.failed.find(m.consumed);
  if (f != m.failed.end()) std::rethrow_exception(f->second);  // stays failed at this position
  Batch b = std::move(m.ready[m.consumed]);
  m.ready.erase(m.consumed);
  ++m.consumed;
  lk.unlock();
  m.cv.notify_all();
  b.wait_seconds = seconds_since(t0);
  return b;
}

DataPosition LatentCacheReader::position() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->at(impl_->consumed);
}

void LatentCacheReader::seek(DataPosition pos) {
  impl_->stop();
  impl_->start(pos);
}

const Manifest& LatentCacheReader::manifest() const {
  return impl_->manifest;
}
const ReaderOptions& LatentCacheReader::options() const {
  return impl_->opt;
}
int64_t LatentCacheReader::steps_per_epoch() const {
  return impl_->steps;
}
int64_t LatentCacheReader::local_batch() const {
  return impl_->local;
}
int64_t LatentCacheReader::block_rows() const {
  return impl_->brows;
}

std::string LatentCacheReader::order_signature() const {
  const Impl& m = *impl_;
  return detail::concat("latent-cache-order-v1 seed=", m.opt.seed,
                        " global_batch=", m.opt.global_batch, " shuffle=", m.opt.shuffle ? 1 : 0,
                        " block_rows=", m.brows, " window_blocks=", m.opt.window_blocks,
                        " flips=", m.flips ? 1 : 0, " samples=", m.manifest.total_samples,
                        " shards=", m.manifest.shards.size());
}

std::vector<int64_t> LatentCacheReader::epoch_order(int64_t epoch) const {
  return *impl_->order(epoch);
}

bool LatentCacheReader::flip_of(int64_t epoch, int64_t index) const {
  return impl_->flip_of(epoch, index);
}

Tensor LatentCacheReader::read_samples(const std::vector<int64_t>& indices, bool flipped) const {
  const Manifest& m = impl_->manifest;
  RAE_CHECK(!flipped || m.layout.has_flip, "cache has no latents_flip");
  Tensor out =
      Tensor::empty({static_cast<int64_t>(indices.size()), m.layout.tokens(), m.layout.channels});
  impl_->fill(indices, std::vector<uint8_t>(indices.size(), flipped ? 1 : 0), out.data<float>());
  return out;
}

}  // namespace rae::cache
