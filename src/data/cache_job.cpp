#include "data/cache_job.h"

#include <sys/stat.h>
#include <tbb/global_control.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/encode_pipeline.h"
#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/image_preprocess.h"
#include "data/latent_cache_checksum.h"
#include "data/latent_cache_manifest.h"
#include "data/latent_cache_shard.h"
#include "data/latent_cache_stats.h"
#include "data/latent_cache_writer.h"
#include "data/output_dir.h"
#include "distributed/mpi_communicator.h"
#include "models/vit_encoder.h"
#ifdef RAE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace rae::cachejob {

namespace fs = std::filesystem;
using cache::LatentLayout;
using cache::RunningStats;
using cache::ShardInfo;
using nlohmann::json;

namespace {

constexpr int kMsgTag = 7101;     // worker -> coordinator
constexpr int kAssignTag = 7102;  // coordinator -> worker
constexpr int64_t kStatsBlockRows = 64;

enum class MsgKind : int64_t { Ready = 0, Done = 1, Error = 2 };
enum class TaskKind : int64_t { Stop = 0, Encode = 1, Restat = 2 };

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string shard_name(int64_t shard) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "shard-%05lld", static_cast<long long>(shard));
  return buf;
}

// ---- listing broadcast ----

std::vector<char> pack_listing(const data::ImageFolderList& l) {
  std::string s;
  auto put = [&](const std::string& x) {
    uint64_t n = x.size();
    s.append(reinterpret_cast<const char*>(&n), 8);
    s += x;
  };
  put(l.root);
  put(std::to_string(l.classes.size()));
  for (const auto& c : l.classes) put(c);
  put(std::to_string(l.entries.size()));
  for (const auto& e : l.entries) {
    put(e.path);
    put(e.relpath);
    put(std::to_string(e.label));
  }
  return std::vector<char>(s.begin(), s.end());
}

data::ImageFolderList unpack_listing(const std::vector<char>& b) {
  size_t pos = 0;
  auto get = [&]() {
    uint64_t n;
    std::memcpy(&n, b.data() + pos, 8);
    pos += 8;
    std::string x(b.data() + pos, n);
    pos += n;
    return x;
  };
  data::ImageFolderList l;
  l.root = get();
  size_t nc = std::stoull(get());
  for (size_t i = 0; i < nc; ++i) l.classes.push_back(get());
  size_t ne = std::stoull(get());
  l.entries.resize(ne);
  for (size_t i = 0; i < ne; ++i) {
    l.entries[i].path = get();
    l.entries[i].relpath = get();
    l.entries[i].label = std::stoi(get());
  }
  return l;
}

// Rank 0's bytes to every rank (under the watchdog).
void bcast_bytes(distributed::MpiCommunicator& world, std::vector<char>& bytes) {
  const int64_t n = distributed::broadcast_i64(&world, static_cast<int64_t>(bytes.size()));
  if (world.rank() != 0) bytes.resize(static_cast<size_t>(n));
  for (int64_t off = 0; off < n; off += (1 << 30)) {
    const int64_t len = std::min<int64_t>(1 << 30, n - off);
    Tensor t = Tensor::from_blob(bytes.data() + off, {len}, DType::U8, Device::cpu(), nullptr);
    world.broadcast(t, 0);
  }
}

// ---- messages ----

std::vector<char> make_msg(MsgKind kind, int64_t shard, const std::string& text,
                           const std::vector<double>& stats) {
  std::vector<char> m(8 * 4 + text.size() + stats.size() * 8);
  int64_t head[4] = {static_cast<int64_t>(kind), shard, static_cast<int64_t>(text.size()),
                     static_cast<int64_t>(stats.size())};
  std::memcpy(m.data(), head, 32);
  std::memcpy(m.data() + 32, text.data(), text.size());
  if (!stats.empty()) std::memcpy(m.data() + 32 + text.size(), stats.data(), stats.size() * 8);
  return m;
}

struct Msg {
  MsgKind kind;
  int64_t shard;
  std::string text;
  std::vector<double> stats;
};

Msg parse_msg(const std::vector<char>& m) {
  int64_t head[4];
  std::memcpy(head, m.data(), 32);
  Msg r{static_cast<MsgKind>(head[0]),
        head[1],
        std::string(m.data() + 32, static_cast<size_t>(head[2])),
        {}};
  r.stats.resize(static_cast<size_t>(head[3]));
  if (head[3] > 0) std::memcpy(r.stats.data(), m.data() + 32 + head[2], r.stats.size() * 8);
  return r;
}

void send_bytes(distributed::MpiCommunicator& world, const std::vector<char>& m, int dest,
                int tag) {
  // Large stats payloads are sent in one message; MPI counts are int, so they must stay < 2 GiB.
  RAE_CHECK(m.size() < (1ull << 31), "cache job: message of ", m.size(), " bytes is too large");
  world.send_bytes(m.data(), m.size(), dest, tag);
}

json shard_json(const ShardInfo& s) {
  return json{{"file", s.file},
              {"samples", s.samples},
              {"first_index", s.first_index},
              {"bytes", s.bytes},
              {"checksum", s.checksum}};
}
ShardInfo shard_from_json(const json& j) {
  ShardInfo s;
  s.file = j.at("file").get<std::string>();
  s.samples = j.at("samples").get<int64_t>();
  s.first_index = j.at("first_index").get<int64_t>();
  s.bytes = j.at("bytes").get<uint64_t>();
  s.checksum = j.at("checksum").get<std::string>();
  return s;
}

// ---- the job's shared context ----

struct Job {
  CacheJobOptions opts;
  distributed::MpiCommunicator* comm = nullptr;
  int rank = 0, world = 1;
  data::ImageFolderList list;
  int64_t total = 0, num_shards = 0;
  models::VitEncoder encoder;
  LatentLayout layout;
  cache::Manifest shape_manifest;  // layout + classes, for opening shards
  json identity;
  // The worker's encode pipeline (data/encode_pipeline.h), made at its first shard and kept for
  // the job: its pinned buffers and threads serve every shard. Declared after the encoder it
  // refers to, so it goes first.
  std::unique_ptr<data::EncodePipeline> pipe;

  int64_t shard_begin(int64_t k) const { return k * opts.shard_size; }
  int64_t shard_count(int64_t k) const {
    return std::min(opts.shard_size, total - k * opts.shard_size);
  }
  data::EncodePipeline& pipeline() {
    if (!pipe)
      pipe = std::make_unique<data::EncodePipeline>(encoder, std::max(1, opts.batch), opts.flip);
    return *pipe;
  }
};

[[noreturn]] void fatal(const Job& job, const std::string& msg) {
  if (job.world > 1) {
    std::fprintf(stderr, "rae cache: rank %d: error: %s\n", job.rank, msg.c_str());
    std::fflush(stderr);
    distributed::abort_job(1);
  }
  RAE_THROW(msg);
}

// Statistics of a finished shard, from its stored values read back (a shard skipped on a rerun):
// accumulated row by row, they equal what its writer computed.
RunningStats shard_stats(const Job& job, const ShardInfo& info) {
  cache::ShardFile f(job.opts.out_dir, job.shape_manifest, info);
  cache::StatsAccumulator acc(job.layout.elements());
  std::vector<char> raw(static_cast<size_t>(kStatsBlockRows) * job.layout.row_bytes());
  for (int64_t r = 0; r < info.samples; r += kStatsBlockRows) {
    int64_t n = std::min(kStatsBlockRows, info.samples - r);
    f.read_rows(cache::View::Plain, r, n, raw.data());
    acc.add(raw.data(), job.layout.dtype, n);
  }
  return acc.stats();
}

// One image on its way through the pipeline.
struct Item {
  int64_t index = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> plain, flipped;  // (3, S, S) normalized
};

// Images [a, a + n) of the listing through the oneTBB pipeline on all cores: read (serial, in
// order) -> decode, center crop, flip, resize and normalize to the encoder's input (parallel) ->
// `consume` (serial, in index order).
void decode_range(const Job& job, int64_t a, int64_t n,
                  const std::function<void(const Item&)>& consume) {
  const auto& cfg = job.encoder.config();
  const int64_t S = cfg.input_size;
  const bool flip = job.opts.flip;
  int64_t next = a;
  const int live = std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
  tbb::parallel_pipeline(
      live,
      tbb::make_filter<void, std::shared_ptr<Item>>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) -> std::shared_ptr<Item> {
            if (next >= a + n) {
              fc.stop();
              return nullptr;
            }
            auto it = std::make_shared<Item>();
            it->index = next++;
            it->bytes =
                data::read_file_bytes(job.list.entries[static_cast<size_t>(it->index)].path);
            return it;
          }) &
          tbb::make_filter<std::shared_ptr<Item>, std::shared_ptr<Item>>(
              tbb::filter_mode::parallel,
              [&](std::shared_ptr<Item> it) {
                const std::string& path = job.list.entries[static_cast<size_t>(it->index)].path;
                data::Image img = data::decode_image(it->bytes.data(), it->bytes.size(), path);
                it->bytes = {};
                data::Image crop = data::center_crop_arr(img, job.opts.image_size);
                it->plain = data::to_encoder_input(crop, static_cast<int>(S), cfg.mean, cfg.std);
                if (flip)
                  it->flipped = data::to_encoder_input(data::flip_horizontal(crop),
                                                       static_cast<int>(S), cfg.mean, cfg.std);
                return it;
              }) &
          tbb::make_filter<std::shared_ptr<Item>, void>(
              tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Item> it) { consume(*it); }));
}

// Decodes the shard's images on the oneTBB pipeline and encodes them on the encode pipeline
// (uploads, forwards and the HDF5 writes of different batches overlap; data/encode_pipeline.h).
ShardInfo encode_shard(Job& job, int64_t shard, RunningStats* stats) {
  const int64_t a = job.shard_begin(shard), n = job.shard_count(shard);
  cache::ShardWriter writer(job.opts.out_dir, shard_name(shard), job.layout, a, n);
  data::EncodePipeline& pipe = job.pipeline();
  // On an error below, the pipeline's threads must be done with `writer` before it goes.
  struct CancelOnError {
    data::EncodePipeline& p;
    bool armed = true;
    ~CancelOnError() {
      if (armed) p.cancel();
    }
  } guard{pipe};
  pipe.begin([&](const Tensor& z, const Tensor& z_flip, const Tensor& labels) {
    writer.append(z, z_flip, labels);
  });
  const bool flip = job.opts.flip;
  decode_range(job, a, n, [&](const Item& it) {
    pipe.add(it.plain.data(), flip ? it.flipped.data() : nullptr,
             job.list.entries[static_cast<size_t>(it.index)].label);
  });
  pipe.end();
  guard.armed = false;
  ShardInfo info = writer.finish();
  *stats = writer.stats();
  return info;
}

// Verifies a shard written by an earlier run (xxh64 of the file, then its structure while reading
// it) and computes its statistics. Returns {"ok", "checksum"} or {"ok": false, "error"} as JSON;
// a damaged shard is not an error of the job (the coordinator re-queues it).
std::string restat_shard(const Job& job, int64_t k, RunningStats* stats) {
  ShardInfo info;
  info.file = shard_name(k) + ".h5";
  info.first_index = job.shard_begin(k);
  info.samples = job.shard_count(k);
  try {
    info.checksum =
        cache::file_checksum((fs::path(job.opts.out_dir) / info.file).string(), &info.bytes);
    *stats = shard_stats(job, info);
    return json{{"ok", true}, {"checksum", info.checksum}}.dump();
  } catch (const std::exception& e) {
    return json{{"ok", false}, {"error", e.what()}}.dump();
  }
}

// ---- restart state ----

// Finished shards recorded by an earlier run (cache_job.json) that are present with their recorded
// size; their checksums are verified by the Restat tasks (in parallel on the workers). Errors if
// the earlier run used other settings.
std::map<int64_t, ShardInfo> recorded_shards(const Job& job) {
  std::map<int64_t, ShardInfo> ok;
  const fs::path jf = fs::path(job.opts.out_dir) / kJobFile;
  std::vector<ShardInfo> candidates;
  if (fs::exists(jf)) {
    json j;
    try {
      std::ifstream in(jf);
      j = json::parse(in);
    } catch (const std::exception& e) {
      RAE_THROW("cannot parse ", jf.string(), ": ", e.what());
    }
    const json& old = j.at("job");
    for (auto& [key, value] : job.identity.items()) {
      RAE_CHECK(old.contains(key) && old[key] == value, "output directory ", job.opts.out_dir,
                " holds a cache made with different settings: '", key, "' was ",
                old.contains(key) ? old[key].dump() : std::string("absent"), ", now ", value.dump(),
                " (use another --out, or --overwrite to replace that cache)");
    }
    for (const auto& s : j.at("shards")) candidates.push_back(shard_from_json(s));
  }  // (a non-empty directory without the job file was refused by prepare_cache_dir)
  for (const ShardInfo& s : candidates) {
    if (s.first_index % job.opts.shard_size != 0) continue;
    int64_t k = s.first_index / job.opts.shard_size;
    if (k >= job.num_shards || s.samples != job.shard_count(k) || s.file != shard_name(k) + ".h5")
      continue;
    std::string path = (fs::path(job.opts.out_dir) / s.file).string();
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      log::info("cache: ", s.file, " is missing; it will be written again");
      continue;
    }
    if (static_cast<uint64_t>(st.st_size) != s.bytes) {
      log::warn("cache: ", s.file, " has ", st.st_size, " bytes, expected ", s.bytes,
                "; it will be written again");
      continue;
    }
    ok[k] = s;  // the checksum is verified by the Restat task, on a worker
  }
  return ok;
}

void save_job_file(const Job& job, const std::vector<std::optional<ShardInfo>>& infos) {
  json shards = json::array();
  for (const auto& s : infos)
    if (s) shards.push_back(shard_json(*s));
  json j{{"job", job.identity}, {"shards", shards}};
  cache::write_file_atomic((fs::path(job.opts.out_dir) / kJobFile).string(), j.dump(1));
}

std::string hms(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  long t = static_cast<long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

// ---- coordinator ----

CacheJobResult coordinate(Job& job) {
  CacheJobResult res;
  res.shards_total = job.num_shards;
  const auto t0 = Clock::now();
  std::map<int64_t, ShardInfo> done_before = recorded_shards(job);
  std::deque<std::pair<TaskKind, int64_t>> tasks;
  std::vector<std::optional<ShardInfo>> infos(static_cast<size_t>(job.num_shards));
  int64_t images_todo = 0;
  for (int64_t k = 0; k < job.num_shards; ++k) {
    auto it = done_before.find(k);
    if (it != done_before.end()) {
      infos[k] = it->second;
      tasks.emplace_back(TaskKind::Restat, k);
      ++res.shards_skipped;
    } else {
      tasks.emplace_back(TaskKind::Encode, k);
      images_todo += job.shard_count(k);
    }
  }
  log::info("cache: ", job.total, " images in ", job.num_shards, " shards of ", job.opts.shard_size,
            "; ", res.shards_skipped,
            " shard(s) recorded as complete (checksums verified before skipping), ", images_todo,
            " images to encode on ", std::max(1, job.world - 1), " worker rank(s)");
  save_job_file(job, infos);

  // Statistics merged in shard order (a frontier), whatever order shards finish in.
  RunningStats total_stats(job.layout.elements());
  std::map<int64_t, RunningStats> waiting;
  int64_t next_merge = 0, images_done = 0;
  auto last_print = Clock::now();
  auto progress = [&](bool force) {
    if (!force && seconds_since(last_print) < job.opts.progress_seconds) return;
    last_print = Clock::now();
    double el = seconds_since(t0), rate = images_done / std::max(el, 1e-9);
    char line[256];
    std::snprintf(line, sizeof(line),
                  "cache: %lld/%lld images (%.1f%%), %.1f images/s, ETA %s, shards %lld/%lld",
                  static_cast<long long>(images_done), static_cast<long long>(images_todo),
                  images_todo ? 100.0 * images_done / images_todo : 100.0, rate,
                  hms(rate > 0 ? (images_todo - images_done) / rate : -1).c_str(),
                  static_cast<long long>(std::count_if(infos.begin(), infos.end(),
                                                       [](auto& s) { return s.has_value(); })),
                  static_cast<long long>(job.num_shards));
    log::info(line);
  };
  // A Restat result carries the shard's checksum: a mismatch (or a shard that cannot be read)
  // sends the shard back to the queue as an Encode task.
  auto restat_ok = [&](int64_t k, const std::string& text) {
    json r = json::parse(text);
    std::string why;
    if (!r.at("ok").get<bool>())
      why = r.at("error").get<std::string>();
    else if (r.at("checksum").get<std::string>() != infos[k]->checksum)
      why = "xxh64 " + r.at("checksum").get<std::string>() + ", recorded " + infos[k]->checksum;
    if (why.empty()) return true;
    log::warn("cache: ", shard_name(k), ".h5 fails verification (", why,
              "); it will be written again");
    infos[k].reset();
    --res.shards_skipped;
    images_todo += job.shard_count(k);
    tasks.emplace_front(TaskKind::Encode, k);
    save_job_file(job, infos);
    return false;
  };
  auto complete = [&](TaskKind kind, int64_t k, const ShardInfo* info, RunningStats st) {
    if (kind == TaskKind::Encode) {
      infos[k] = *info;
      images_done += info->samples;
      ++res.shards_written;
      save_job_file(job, infos);
    }
    waiting.emplace(k, std::move(st));
    for (auto it = waiting.find(next_merge); it != waiting.end(); it = waiting.find(next_merge)) {
      total_stats.merge(it->second);
      waiting.erase(it);
      ++next_merge;
    }
    progress(false);
  };

  if (job.world == 1) {
    while (!tasks.empty()) {
      auto [kind, k] = tasks.front();
      tasks.pop_front();
      if (kind == TaskKind::Encode) {
        RunningStats st;
        ShardInfo info = encode_shard(job, k, &st);
        complete(kind, k, &info, std::move(st));
      } else {
        RunningStats st;
        if (restat_ok(k, restat_shard(job, k, &st))) complete(kind, k, nullptr, std::move(st));
      }
    }
  } else {
    std::map<int, std::pair<TaskKind, int64_t>> busy;
    int active = job.world - 1;
    while (active > 0) {
      int src = -1;
      Msg msg = parse_msg(job.comm->recv_bytes(kMsgTag, -1, &src));
      if (msg.kind == MsgKind::Error)
        fatal(job, "rank " + std::to_string(src) + " failed: " + msg.text);
      if (msg.kind == MsgKind::Done) {
        auto [kind, k] = busy.at(src);
        RAE_CHECK(k == msg.shard, "cache job: rank ", src, " reported shard ", msg.shard,
                  ", assigned ", k);
        // A failed Restat (an unreadable shard) carries no statistics.
        RunningStats rs = msg.stats.empty() ? RunningStats() : RunningStats::unpack(msg.stats);
        if (kind == TaskKind::Encode) {
          ShardInfo info = shard_from_json(json::parse(msg.text));
          complete(kind, k, &info, std::move(rs));
        } else if (restat_ok(k, msg.text)) {
          complete(kind, k, nullptr, std::move(rs));
        }
        busy.erase(src);
      }
      int64_t assign[2] = {static_cast<int64_t>(TaskKind::Stop), -1};
      if (!tasks.empty()) {
        auto t = tasks.front();
        tasks.pop_front();
        busy[src] = t;
        assign[0] = static_cast<int64_t>(t.first);
        assign[1] = t.second;
      } else {
        --active;
      }
      job.comm->send_bytes(assign, sizeof assign, src, kAssignTag);
    }
  }
  RAE_CHECK(next_merge == job.num_shards, "cache job: statistics of ", job.num_shards - next_merge,
            " shard(s) missing");
  for (int64_t k = 0; k < job.num_shards; ++k)
    RAE_CHECK(infos[k].has_value(), "cache job: shard ", k, " was not written");

  cache::Manifest m = job.shape_manifest;
  for (auto& s : infos) m.shards.push_back(*s);
  m.finalize_shards();
  m.stats_file = cache::kStatsFile;
  cache::save_stats((fs::path(job.opts.out_dir) / cache::kStatsFile).string(), total_stats,
                    job.layout.tokens(), job.layout.channels);
  m.save(job.opts.out_dir);
  res.images = images_done;
  res.seconds = seconds_since(t0);
  if (job.pipe) res.encode_busy_s = job.pipe->busy_seconds();  // one process: rank 0 encoded
  progress(true);
  log::info("cache: done: ", m.total_samples, " samples, ", res.shards_written,
            " shard(s) written, ", res.shards_skipped, " verified and skipped, ", res.seconds,
            " s -> ", job.opts.out_dir);
  return res;
}

void work(Job& job) {
  std::vector<char> msg = make_msg(MsgKind::Ready, -1, "", {});
  while (true) {
    send_bytes(*job.comm, msg, 0, kMsgTag);
    int64_t assign[2];
    const std::vector<char> reply = job.comm->recv_bytes(kAssignTag, 0);
    RAE_CHECK(reply.size() == sizeof assign, "cache job: assignment of ", reply.size(), " bytes");
    std::memcpy(assign, reply.data(), sizeof assign);
    TaskKind kind = static_cast<TaskKind>(assign[0]);
    int64_t k = assign[1];
    if (kind == TaskKind::Stop) return;
    try {
      if (kind == TaskKind::Encode) {
        RunningStats st;
        ShardInfo info = encode_shard(job, k, &st);
        msg = make_msg(MsgKind::Done, k, shard_json(info).dump(), st.pack());
      } else {
        RunningStats st;
        std::string text = restat_shard(job, k, &st);
        msg = make_msg(MsgKind::Done, k, text, st.count() > 0 ? st.pack() : std::vector<double>{});
      }
    } catch (const std::exception& e) {
      msg = make_msg(MsgKind::Error, k, std::string("shard ") + std::to_string(k) + ": " + e.what(),
                     {});
    }
  }
}

}  // namespace

CacheJobResult run_cache_job(const CacheJobOptions& opts, distributed::MpiCommunicator& world) {
  Job job;
  job.opts = opts;
  job.comm = &world;
  job.rank = world.rank();
  job.world = world.size();
  std::unique_ptr<tbb::global_control> threads;
  if (opts.threads > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    opts.threads);

  // Listing on rank 0, broadcast so every rank works from the same index.
  std::vector<char> packed;
  std::string error;
  if (job.rank == 0) {
    try {
      RAE_CHECK(opts.shard_size > 0, "--shard-size must be > 0");
      RAE_CHECK(opts.image_size >= 8, "--image-size must be >= 8");
      job.list = data::list_image_folder(opts.data_dir, opts.split, opts.label_file);
      RAE_CHECK(!job.list.entries.empty(), "no images found under ", job.list.root);
      // Same directory, no --overwrite and a job file: a resume (checked in recorded_shards).
      if (opts.overwrite || !fs::exists(fs::path(opts.out_dir) / kJobFile))
        data::prepare_cache_dir(opts.out_dir, opts.overwrite, "cache");
      packed = pack_listing(job.list);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  const int64_t failed = distributed::broadcast_i64(&world, error.empty() ? 0 : 1);
  if (failed) {
    if (job.rank == 0) RAE_THROW(error);
    RAE_THROW("rank 0 failed to list the data");
  }
  bcast_bytes(world, packed);
  if (job.rank != 0) job.list = unpack_listing(packed);

  std::string weights_hash;
  try {
    models::EncoderLoadOptions eo;
    eo.input_size = opts.encoder_input;
    eo.device = parse_device(opts.device);
    if (opts.device == "cuda" && cuda_device_count() > 0)
      eo.device = Device::cuda(job.rank % cuda_device_count());
    if (job.world > 1 && job.rank == 0)
      eo.device = Device::cpu();  // the coordinator only needs the config
    job.encoder = models::VitEncoder::load(opts.encoder, eo);
    const std::string& src = job.encoder.weights_source();
    if (job.rank == 0)
      weights_hash = src.rfind("preset:", 0) == 0 ? src : cache::file_checksum(src);
  } catch (const std::exception& e) {
    fatal(job, std::string("cannot load encoder: ") + e.what());
  }
  const auto& cfg = job.encoder.config();
  job.total = static_cast<int64_t>(job.list.entries.size());
  if (opts.limit > 0) job.total = std::min(job.total, opts.limit);
  job.num_shards = (job.total + opts.shard_size - 1) / opts.shard_size;
  job.layout.grid_h = job.layout.grid_w = cfg.grid();
  job.layout.channels = cfg.hidden;
  job.layout.dtype = cache::storage_dtype_from_name(opts.dtype);
  job.layout.has_flip = opts.flip;
  cache::Manifest& m = job.shape_manifest;
  m.layout = job.layout;
  m.encoder_id = job.encoder.id();
  m.encoder_weights_hash = weights_hash;
  m.image_size = opts.image_size;
  m.split = opts.split;
  m.num_classes = static_cast<int64_t>(job.list.classes.size());
  m.class_names = job.list.classes;

  if (job.rank == 0) {
    cache::Xxh64 h;
    for (int64_t i = 0; i < job.total; ++i) {
      const auto& e = job.list.entries[static_cast<size_t>(i)];
      h.update(e.relpath.data(), e.relpath.size() + 1);
      h.update(&e.label, 4);
    }
    for (const auto& c : job.list.classes) h.update(c.data(), c.size() + 1);
    job.identity =
        json{{"encoder_id", m.encoder_id},    {"encoder_weights_hash", weights_hash},
             {"image_size", opts.image_size}, {"encoder_input", cfg.input_size},
             {"dtype", opts.dtype},           {"grid", cfg.grid()},
             {"channels", cfg.hidden},        {"flip", opts.flip},
             {"split", opts.split},           {"images", job.total},
             {"shard_size", opts.shard_size}, {"listing_xxh64", cache::checksum_hex(h.digest())}};
    try {
      return coordinate(job);
    } catch (const std::exception& e) {
      fatal(job, e.what());
    }
  }
  try {
    work(job);
  } catch (const std::exception& e) {
    fatal(job, e.what());
  }
  return {};
}

namespace {

void device_sync(const Device& d) {
#ifdef RAE_WITH_CUDA
  if (d.is_cuda()) {
    cudaError_t e = cudaDeviceSynchronize();
    RAE_CHECK(e == cudaSuccess, "cache benchmark: ", cudaGetErrorString(e));
  }
#endif
  (void)d;
}

}  // namespace

json run_cache_benchmark(const CacheJobOptions& opts, distributed::MpiCommunicator& world,
                         const std::string& json_path) {
  RAE_CHECK(world.size() == 1, "rae cache --benchmark runs in one process, not ", world.size());
  std::unique_ptr<tbb::global_control> threads;
  if (opts.threads > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    opts.threads);
  Job job;
  job.opts = opts;
  job.list = data::list_image_folder(opts.data_dir, opts.split, opts.label_file);
  RAE_CHECK(!job.list.entries.empty(), "no images found under ", job.list.root);
  job.total = static_cast<int64_t>(job.list.entries.size());
  if (opts.limit > 0) job.total = std::min(job.total, opts.limit);
  models::EncoderLoadOptions eo;
  eo.input_size = opts.encoder_input;
  eo.device = parse_device(opts.device);
  job.encoder = models::VitEncoder::load(opts.encoder, eo);
  const Device dev = job.encoder.device();
  const auto& cfg = job.encoder.config();
  const int64_t B = std::max(1, opts.batch), views = opts.flip ? 2 : 1;
  json r = {{"images", job.total},
            {"batch", B},
            {"views", views},
            {"encoder", opts.encoder},
            {"encoder_id", job.encoder.id()},
            {"encoder_input", cfg.input_size},
            {"device", dev.str()},
            {"threads", opts.threads > 0 ? opts.threads : tbb::this_task_arena::max_concurrency()},
            {"hardware_threads", std::thread::hardware_concurrency()}};

  // 1. Decode-bound: the oneTBB pipeline alone.
  int64_t decoded = 0;
  auto t0 = Clock::now();
  decode_range(job, 0, job.total, [&](const Item&) { ++decoded; });
  const double decode_s = seconds_since(t0);
  r["decode_seconds"] = decode_s;
  r["decode_images_per_s"] = static_cast<double>(decoded) / decode_s;
  log::info("cache benchmark: decode-bound ", r["decode_images_per_s"].get<double>(), " images/s");

  // 2. Encoder-bound: device-resident random batches (both views), no copies.
  {
    const int64_t S = cfg.input_size;
    Tensor host = Tensor::empty({views * B, 3, S, S});
    const rng::Key key{7, rng::Purpose::Test, 0, 0};
    float* h = host.data<float>();
    for (int64_t i = 0; i < host.numel(); ++i) h[i] = rng::normal_at(key, static_cast<uint64_t>(i));
    Tensor px = host.to(dev);
    for (int i = 0; i < 2; ++i) job.encoder.forward(px);  // warm-up
    device_sync(dev);
    const int iters = dev.is_cuda() ? 10 : 2;
    t0 = Clock::now();
    for (int i = 0; i < iters; ++i) job.encoder.forward(px);
    device_sync(dev);
    const double enc_s = seconds_since(t0);
    r["encode_images_per_s"] = static_cast<double>(iters * B) / enc_s;
    log::info("cache benchmark: encoder-bound ", r["encode_images_per_s"].get<double>(),
              " images/s (", views, " view(s) each)");
  }
  job.pipe.reset();

  // 3. End to end: the job itself, from scratch.
  CacheJobOptions o = opts;
  o.overwrite = true;
  CacheJobResult res = run_cache_job(o, world);
  r["end_to_end_seconds"] = res.seconds;
  r["end_to_end_images_per_s"] = static_cast<double>(res.images) / std::max(res.seconds, 1e-9);
  r["encode_busy_seconds"] = res.encode_busy_s;
  r["gpu_busy_fraction"] = res.encode_busy_s / std::max(res.seconds, 1e-9);
  constexpr double kImageNetTrain = 1281167;
  r["imagenet_train_hours_8_gpus"] =
      kImageNetTrain / (8 * r["end_to_end_images_per_s"].get<double>()) / 3600.0;
  r["projection_note"] =
      "ImageNet-1k train (1,281,167 images) on one node of 8 such GPUs, one rank per GPU, each "
      "with as many CPU cores as this run had; the coordinator hands shards to the 8 ranks, so "
      "the node rate is 8 x this end-to-end rate while the node's disks keep up";
  if (!json_path.empty()) write_file_atomic(json_path, r.dump(1) + "\n");
  return r;
}

}  // namespace rae::cachejob
