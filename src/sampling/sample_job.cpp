#include "sampling/sample_job.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/log.h"
#include "data/image_encode.h"
#include "diffusion/flow.h"
#include "eval/progress.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "ops/elementwise.h"
#include "ops/precision.h"
#include "sampling/decode.h"
#include "sampling/noise.h"
#include "sampling/velocity.h"

namespace rae::sampling {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Which samples each chunk holds.
struct Plan {
  int64_t samples = 0, chunk = 0, chunks = 0;
  int64_t first(int64_t c) const { return c * chunk; }
  int64_t count(int64_t c) const { return std::min(chunk, samples - first(c)); }
};

std::string chunk_path(const std::string& dir, int64_t c) {
  char name[64];
  std::snprintf(name, sizeof name, "chunk-%06lld.safetensors", static_cast<long long>(c));
  return dir + "/chunks/" + name;
}

// png/000123.png: the release's 6 digits, more when the job has a million samples or more.
std::string png_path(const std::string& dir, int64_t g, int64_t total) {
  int digits = 6;
  for (int64_t n = 1000000; n < total; n *= 10) ++digits;
  char name[64];
  std::snprintf(name, sizeof name, "%0*lld.png", digits, static_cast<long long>(g));
  return dir + "/png/" + name;
}

bool given(const ModelSource& s) {
  return !s.arg.empty();
}

// A file as the job records it: its absolute path, size and modification time, so a rerun
// against a re-exported model is refused rather than silently mixed.
json file_identity(const std::string& path) {
  if (path.empty() || path == "none") return path;
  struct stat st {};
  RAE_CHECK(::stat(path.c_str(), &st) == 0, "cannot stat '", path, "'");
  return {{"path", fs::absolute(path).lexically_normal().string()},
          {"bytes", static_cast<int64_t>(st.st_size)},
          {"mtime", static_cast<int64_t>(st.st_mtime)}};
}

// Everything that determines the images (not the batch size, the rank count or --png).
json job_settings(const SampleJobOptions& o, const Plan& plan) {
  const auto& s = o.sampler;
  json sampler = {
      {"kind", diffusion::sampler_kind_name(s.kind)}, {"steps", s.num_steps}, {"shift", s.shift}};
  if (s.kind == diffusion::SamplerKind::Sde)
    sampler.update({{"diffusion", static_cast<int>(s.diffusion)},
                    {"diffusion_norm", s.diffusion_norm},
                    {"last_step", static_cast<int>(s.last_step)},
                    {"last_step_size", s.last_step_size}});
  else
    sampler["t_end"] = s.t_end;
  const auto& g = o.guidance;
  static const char* methods[] = {"none", "cfg", "autoguidance"};
  json guidance = {{"method", methods[static_cast<int>(g.method)]}};
  if (g.method != diffusion::Guidance::Method::None)
    guidance.update({{"scale", g.scale}, {"t_min", g.t_min}, {"t_max", g.t_max}});
  json labels;
  if (o.num_per_class > 0) {
    std::vector<int32_t> classes;
    for (size_t i = 0; i < o.labels.size(); i += o.num_per_class) classes.push_back(o.labels[i]);
    labels = {{"classes", classes}, {"num_per_class", o.num_per_class}};
  } else {
    labels = {{"labels", o.labels}};
  }
  return {{"format", "rae-sample-job-1"},
          {"samples", plan.samples},
          {"chunk", plan.chunk},
          {"labels", labels},
          {"seed", o.seed},
          {"sampler", sampler},
          {"guidance", guidance},
          {"model", source_identity(o.model)},
          {"guide_model", given(o.guide_model) ? source_identity(o.guide_model) : json("")},
          {"decoder", given(o.decoder) ? source_identity(o.decoder) : json("")},
          {"stats", o.stats_path.empty() ? json("model") : file_identity(o.stats_path)},
          {"pixel_norm", o.pixel_norm},
          {"noise_file", file_identity(o.noise_file)},
          {"keep_latents", o.keep_latents},
          {"device", parse_device(o.device).is_cuda() ? "cuda" : "cpu"},
          {"precision", o.precision}};
}

// Rank 0: creates the directory and job.json, or checks that an existing job has the same
// settings (naming the first one that differs). Returns whether the job was already complete.
bool open_job_dir(const std::string& dir, const json& settings) {
  fs::create_directories(dir + "/chunks");
  const std::string path = dir + "/job.json";
  if (fs::exists(path)) {
    std::ifstream in(path);
    json old;
    try {
      old = json::parse(in);
    } catch (const std::exception& e) {
      RAE_THROW(path, ": unreadable job file (", e.what(), "); use another --out");
    }
    json prev = old.value("settings", json());
    if (prev != settings) {
      std::string diff = "(format)";
      for (auto& [k, v] : settings.items())
        if (!prev.contains(k) || prev[k] != v) {
          diff =
              k + ": was " + (prev.contains(k) ? prev[k].dump() : "absent") + ", now " + v.dump();
          break;
        }
      RAE_THROW(dir, " holds a sampling job with other settings (", diff,
                "); resume it with the same options or sample into another --out");
    }
    return old.value("complete", false);
  }
  write_file_atomic(path, json{{"settings", settings}, {"complete", false}}.dump(2) + "\n");
  return false;
}

// A finished chunk: its file loads (safetensors validates sizes) and says it is this chunk of
// this job. Anything else (absent, truncated, another job) is resampled.
std::optional<safetensors::File> load_chunk(const std::string& path, const std::string& job_id,
                                            int64_t first, int64_t count) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    safetensors::File f = safetensors::load(path);
    const auto& m = f.metadata;
    if (m.count("job") && m.at("job") == job_id && m.count("first") &&
        std::stoll(m.at("first")) == first && m.count("count") &&
        std::stoll(m.at("count")) == count)
      return f;
    log::warn(path, ": belongs to another job or chunk; sampling it again");
  } catch (const std::exception& e) {
    log::warn(path, ": unreadable (", e.what(), "); sampling it again");
  }
  return std::nullopt;
}

// Waits for every rank without the collective watchdog's fixed deadline (ranks may legitimately
// finish minutes apart), polling the barrier until `deadline_s`.
void wait_for_all(distributed::Communicator* world, double deadline_s, const char* what) {
  if (!world || world->size() == 1) return;
  auto t0 = Clock::now();
  distributed::Work w = world->barrier_async();
  while (!w.test()) {
    RAE_CHECK(seconds_since(t0) < deadline_s, "rank ", world->rank(), ": other ranks did not ",
              what, " within ", deadline_s, " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Device pick_device(const std::string& spec, int local_rank) {
  Device d = parse_device(spec);
  if (spec == "cuda") {
    RAE_CHECK(cuda_available(), "--device cuda: no CUDA device answers");
    d = Device::cuda(local_rank % cuda_device_count());
  }
  return d;
}

// The models of one rank.
struct Engines {
  Device device;
  VelocityModel model, guide;
  diffusion::LatentStats stats;  // what de-normalises the samples (undefined: nothing)
  std::unique_ptr<models::VitDecoder> decoder;
  std::unique_ptr<DecodePipeline> pipeline;
  std::unique_ptr<NoiseFile> noise_file;
  diffusion::Velocity velocity;
};

DType activation_dtype(const SampleJobOptions& o, Device device) {
  ops::set_precision(ops::precision_from_name(o.precision));
  if (o.precision != "fp32")
    RAE_CHECK(device.is_cuda(), "--precision ", o.precision, " needs --device cuda");
  return o.precision == "bf16" ? DType::BF16 : DType::F32;
}

// What the options leave to the model: the labels of --classes (all the model's classes when
// none are named), their range, the time shift of its latent size and the null label of CFG.
void resolve_with_model(SampleJobOptions& o, const VelocityModel& m) {
  if (o.labels.empty()) {
    std::vector<int32_t> classes = o.classes;
    if (classes.empty())
      for (int64_t c = 0; c < m.num_classes; ++c) classes.push_back(static_cast<int32_t>(c));
    for (int32_t c : classes)
      for (int64_t k = 0; k < o.num_per_class; ++k) o.labels.push_back(c);
  }
  const char* opt = o.num_per_class > 0 ? "--classes" : "--labels";
  const int64_t top = m.has_null_class ? m.num_classes : m.num_classes - 1;
  for (int32_t y : o.labels)
    RAE_CHECK(y >= 0 && y <= top, opt, ": ", y, " is not a class of the model (0..",
              m.num_classes - 1,
              m.has_null_class ? ", or " + std::to_string(m.num_classes) + " for the null class"
                               : std::string("; it has no null class"),
              ")");
  const int64_t dim = o.shift_dim > 0 ? o.shift_dim : m.tokens * m.channels;
  o.sampler.shift = diffusion::time_shift(dim, o.shift_base);
  o.guidance.null_label = static_cast<int32_t>(m.num_classes);
  RAE_CHECK(o.guidance.method != diffusion::Guidance::Method::Cfg || m.has_null_class,
            describe(o.model),
            ": classifier-free guidance needs a null class, and this model has none "
            "(class_dropout 0); sample with --cfg-scale 1");
}

// The guide, the decoder and the statistics, once the model is loaded.
void load_engines(const SampleJobOptions& o, Engines& e, DType act) {
  diffusion::Velocity guide;
  if (given(o.guide_model)) {
    e.guide = load_velocity_model(o.guide_model, e.device, act);
    RAE_CHECK(e.guide.tokens == e.model.tokens && e.guide.channels == e.model.channels,
              describe(o.guide_model), ": the guide model's latents (", e.guide.tokens, " x ",
              e.guide.channels, ") differ from the model's (", e.model.tokens, " x ",
              e.model.channels, ")");
    guide = e.guide.velocity;
  }
  e.velocity = diffusion::guided_velocity(e.model.velocity, guide, o.guidance);
  if (o.stats_path == "none") {
    e.stats = diffusion::LatentStats();
  } else if (!o.stats_path.empty()) {
    e.stats = load_latent_stats(o.stats_path, e.model.tokens, e.model.channels);
  } else {
    e.stats = e.model.stats;
  }
  if (given(o.decoder)) {
    e.decoder = load_decoder(o.decoder, e.device, e.model.channels);
    const auto& dc = e.decoder->decoder_config();
    RAE_CHECK(dc.tokens() == e.model.tokens && dc.latent_channels == e.model.channels, "decoder ",
              describe(o.decoder), " decodes ", dc.tokens(), " x ", dc.latent_channels,
              " latents but the model samples ", e.model.tokens, " x ", e.model.channels);
    e.pipeline = std::make_unique<DecodePipeline>(*e.decoder, e.stats, e.device, act);
    if (!o.pixel_norm.empty()) {
      std::array<float, 3> mean, std;
      pixel_norm_from_name(o.pixel_norm, &mean, &std);
      e.pipeline->set_pixel_norm(mean, std);
    }
  }
  if (!o.noise_file.empty())
    e.noise_file = std::make_unique<NoiseFile>(o.noise_file, e.model.tokens, e.model.channels);
}

// Samples chunk c: returns its images (count, S, S, 3) (empty without a decoder) and latents.
struct BatchTime {
  int64_t images = 0;
  double seconds = 0, decode_seconds = 0;
};

void sample_chunk(const SampleJobOptions& o, Engines& e, const Plan& plan, int64_t c,
                  std::vector<uint8_t>& images, Tensor& latents, eval::ProgressBar& progress,
                  int64_t& done, std::vector<BatchTime>& times) {
  const int64_t first = plan.first(c), count = plan.count(c);
  const int64_t T = e.model.tokens, C = e.model.channels;
  latents = Tensor::empty({count, T, C});
  images.clear();
  for (int64_t b0 = 0; b0 < count; b0 += o.batch) {
    const int64_t nb = std::min(o.batch, count - b0);
    const auto tb = Clock::now();
    std::vector<int64_t> ids(nb);
    Tensor y = Tensor::empty({nb}, DType::I32);
    for (int64_t i = 0; i < nb; ++i) {
      ids[i] = first + b0 + i;
      y.data<int32_t>()[i] = o.labels[ids[i]];
    }
    Tensor x = Tensor::empty({nb, T, C}, DType::F32, e.device);
    if (e.noise_file) {
      RAE_CHECK(e.noise_file->samples() >= plan.samples, o.noise_file, ": holds ",
                e.noise_file->samples(), " samples, the job has ", plan.samples);
      e.noise_file->fill_initial(x, ids);
    } else {
      fill_keyed_noise(x, o.seed, 0, ids);
    }
    diffusion::StepNoise step_noise = [&](int step, const Tensor& out) {
      if (e.noise_file)
        e.noise_file->fill_sde(step, out, ids);
      else
        fill_keyed_noise(out, o.seed, static_cast<uint64_t>(step) + 1, ids);
    };
    diffusion::sample(o.sampler, e.velocity, x, y.to(e.device), step_noise);
    RAE_CHECK(ops::all_finite(x), "samples ", ids.front(), "..", ids.back(),
              " have non-finite latents (a diverging model or sampler setting)");
    latents.narrow(0, b0, nb).copy_from(x);  // waits for the device
    BatchTime bt;
    bt.images = nb;
    if (e.pipeline) {
      const auto td = Clock::now();
      std::vector<uint8_t> u8 = e.pipeline->decode_u8(x);
      images.insert(images.end(), u8.begin(), u8.end());
      bt.decode_seconds = seconds_since(td);
    }
    bt.seconds = seconds_since(tb);
    times.push_back(bt);
    done += nb;
    progress.update(done);
  }
}

void write_pngs(const SampleJobOptions& o, const Plan& plan, int64_t c, const uint8_t* images,
                int64_t size, bool only_missing) {
  fs::create_directories(o.out_dir + "/png");
  const int64_t bytes = size * size * 3;
  for (int64_t i = 0; i < plan.count(c); ++i) {
    const std::string p = png_path(o.out_dir, plan.first(c) + i, plan.samples);
    if (only_missing && fs::exists(p)) continue;
    data::write_png(p, images + i * bytes, static_cast<int>(size), static_cast<int>(size));
  }
}

// Rank 0, once every chunk exists: samples.npz, grid.png, latents.npz.
void assemble(const SampleJobOptions& o, const Plan& plan, const std::string& job_id,
              int64_t image_size, int64_t T, int64_t C, const diffusion::LatentStats& stats,
              SampleJobResult& res) {
  const int64_t S = image_size, img_bytes = S * S * 3;
  const bool decoded = given(o.decoder);
  std::unique_ptr<npz::Writer> images, lat;
  if (decoded) {
    res.npz_path = o.out_dir + "/samples.npz";
    images = std::make_unique<npz::Writer>(res.npz_path);
    Tensor labels = Tensor::empty({plan.samples}, DType::I32);  // (N): ADM readers take arr_0
    std::copy(o.labels.begin(), o.labels.end(), labels.data<int32_t>());
    images->add("labels", labels);
    images->begin_array("arr_0", DType::U8, {plan.samples, S, S, 3});
  }
  if (o.keep_latents) {
    lat = std::make_unique<npz::Writer>(o.out_dir + "/latents.npz");
    Tensor labels = Tensor::empty({plan.samples}, DType::I32);
    std::copy(o.labels.begin(), o.labels.end(), labels.data<int32_t>());
    lat->add("labels", labels);
    if (stats.defined()) {  // what `rae decode` de-normalises the latents with
      lat->add(diffusion::kLatentMeanName, stats.mean);
      lat->add(diffusion::kLatentVarName, stats.var);
      lat->add(kLatentEpsArray, Tensor::full({1}, stats.eps, DType::F64));
    }
    lat->begin_array("latents", DType::F32, {plan.samples, T, C});
  }
  // The grid: rows of classes (or of consecutive samples without --num-per-class).
  const int64_t per_row = o.num_per_class > 0 ? o.num_per_class : o.grid_cols;
  const int64_t rows = std::min<int64_t>(o.grid_rows, (plan.samples + per_row - 1) / per_row);
  const int64_t cols = std::min<int64_t>(o.grid_cols, per_row);
  std::vector<uint8_t> grid(static_cast<size_t>(rows * cols * img_bytes), 255);
  std::vector<const uint8_t*> cells(rows * cols, nullptr);
  for (int64_t c = 0; c < plan.chunks; ++c) {
    auto f = load_chunk(chunk_path(o.out_dir, c), job_id, plan.first(c), plan.count(c));
    RAE_CHECK(f.has_value(), chunk_path(o.out_dir, c),
              ": missing or invalid after every rank "
              "finished (a shared --out directory is required)");
    if (decoded) {
      Tensor im = f->get("images", DType::U8, {plan.count(c), S, S, 3});
      images->append(im);
      for (int64_t i = 0; i < plan.count(c); ++i) {
        const int64_t g = plan.first(c) + i, r = g / per_row, k = g % per_row;
        if (r < rows && k < cols) {
          std::copy_n(im.data<uint8_t>() + i * img_bytes, img_bytes,
                      grid.data() + (r * cols + k) * img_bytes);
          cells[r * cols + k] = grid.data() + (r * cols + k) * img_bytes;
        }
      }
    }
    if (lat) lat->append(f->get("latents", DType::F32, {plan.count(c), T, C}));
  }
  if (images) {
    images->end_array();
    images->commit();
    res.grid_path = o.out_dir + "/grid.png";
    data::write_png(res.grid_path, data::make_grid(cells, static_cast<int>(S), static_cast<int>(S),
                                                   static_cast<int>(cols)));
  }
  if (lat) {
    lat->end_array();
    lat->commit();
  }
}

// This rank's timings: sampling + decoding per batch (chunk writes excluded), and the rates
// without the first batch (CUDA warm-up: kernel selection, allocator growth) unless there is
// only one.
void write_report(const SampleJobOptions& o, const Engines& e, const std::vector<BatchTime>& times,
                  double wall_s, int rank, int size) {
  int64_t n = 0, n_steady = 0;
  double s = 0, s_steady = 0, dec = 0, dec_steady = 0;
  json batches = json::array();
  for (size_t i = 0; i < times.size(); ++i) {
    n += times[i].images, s += times[i].seconds, dec += times[i].decode_seconds;
    if (i > 0 || times.size() == 1)
      n_steady += times[i].images, s_steady += times[i].seconds,
          dec_steady += times[i].decode_seconds;
    batches.push_back({{"images", times[i].images},
                       {"seconds", times[i].seconds},
                       {"decode_seconds", times[i].decode_seconds}});
  }
  json r = {{"name", "rae_sample"},
            {"rank", rank},
            {"model", e.model.description},
            {"decoder", o.decoder.arg},
            {"sampler", diffusion::sampler_kind_name(o.sampler.kind)},
            {"steps", o.sampler.num_steps},
            {"guidance_scale", o.guidance.scale},
            {"batch", o.batch},
            {"device", e.device.str()},
            {"precision", o.precision},
            {"images", n},
            {"seconds", s},
            {"decode_seconds", dec},
            {"wall_seconds", wall_s},
            {"images_per_s", s > 0 ? n / s : 0.0},
            {"images_per_s_steady", s_steady > 0 ? json(n_steady / s_steady) : json(nullptr)},
            // Sampling alone (latents), without the decoder and the uint8 conversion.
            {"latents_per_s_steady",
             s_steady - dec_steady > 0 ? json(n_steady / (s_steady - dec_steady)) : json(nullptr)},
            {"batches", batches}};
  const std::string path =
      size > 1 ? o.report_path + ".rank" + std::to_string(rank) : o.report_path;
  write_file_atomic(path, r.dump() + "\n");
}

}  // namespace

SampleJobResult run_sample_job(const SampleJobOptions& o0, distributed::Communicator* world) {
  SampleJobOptions o = o0;
  RAE_CHECK(!o.labels.empty() || o.num_per_class > 0, "sample: no samples requested");
  RAE_CHECK(o.labels.empty() || o.num_per_class == 0,
            "sample: explicit labels and --num-per-class exclude each other");
  RAE_CHECK(o.batch > 0, "sample: --batch must be > 0, got ", o.batch);
  RAE_CHECK(o.chunk >= 0, "sample: --chunk must be >= 0, got ", o.chunk);
  RAE_CHECK(!o.out_dir.empty(), "sample: --out is required");
  RAE_CHECK(std::isfinite(o.shift_base) && o.shift_base > 0, "--shift-base must be > 0, got ",
            o.shift_base);
  RAE_CHECK(o.shift_dim >= 0, "--shift-dim must be >= 0, got ", o.shift_dim);
  if (!given(o.decoder)) o.keep_latents = true;  // latents are then the only output
  diffusion::validate(o.guidance, given(o.guide_model));

  // The model first: the labels, the shift and the null label depend on it.
  Engines e;
  e.device = pick_device(o.device, world ? world->local_rank() : 0);
  const DType act = activation_dtype(o, e.device);
  e.model = load_velocity_model(o.model, e.device, act);
  resolve_with_model(o, e.model);
  diffusion::validate(o.sampler);
  load_engines(o, e, act);

  Plan plan;
  plan.samples = static_cast<int64_t>(o.labels.size());
  plan.chunk = o.chunk > 0 ? o.chunk : o.batch;
  plan.chunks = (plan.samples + plan.chunk - 1) / plan.chunk;
  const json settings = job_settings(o, plan);
  const uint64_t job_hash = xxh64(settings.dump());
  const std::string job_id = checksum_hex(job_hash);
  const int rank = world ? world->rank() : 0, size = world ? world->size() : 1;

  // Rank 0 opens (or checks) the job directory; the others learn whether that worked, and check
  // that they resolved the same settings (a run directory could have gained a checkpoint between
  // the ranks' starts).
  Tensor status = Tensor::zeros({3}, DType::I64);
  std::string open_error;
  if (rank == 0) {
    status.data<int64_t>()[2] = static_cast<int64_t>(job_hash);
    try {
      status.data<int64_t>()[1] = open_job_dir(o.out_dir, settings) ? 1 : 0;
    } catch (const std::exception& e) {
      open_error = e.what();
      status.data<int64_t>()[0] = 1;
    }
  }
  if (world) world->broadcast(status, 0);
  if (status.data<int64_t>()[0]) {
    RAE_CHECK(rank != 0, open_error);
    RAE_THROW("rank 0 could not open the job directory ", o.out_dir);
  }
  RAE_CHECK(static_cast<uint64_t>(status.data<int64_t>()[2]) == job_hash, "rank ", rank,
            " resolved other job settings than rank 0 (job ", job_id, " vs ",
            checksum_hex(static_cast<uint64_t>(status.data<int64_t>()[2])),
            "; e.g. a newer checkpoint of --model appeared while the ranks started): rerun");
  const bool was_complete = status.data<int64_t>()[1] == 1;

  SampleJobResult res;
  res.samples = plan.samples, res.chunks = plan.chunks;
  if (rank == 0)
    log::info("sample: ", plan.samples, " samples in ", plan.chunks, " chunks of ", plan.chunk,
              " on ", size, " rank(s), batch ", o.batch, "; model ", e.model.description, ", ",
              diffusion::sampler_kind_name(o.sampler.kind), " ", o.sampler.num_steps,
              " steps, shift ", o.sampler.shift, ", device ", e.device.str(), ", precision ",
              o.precision, was_complete ? "; the job is complete: rewriting its outputs" : "");

  // This rank's chunks: c % size == rank; finished ones are skipped.
  std::vector<int64_t> todo;
  int64_t mine = 0, resumed_samples = 0;
  for (int64_t c = rank; c < plan.chunks; c += size) {
    ++mine;
    auto f = load_chunk(chunk_path(o.out_dir, c), job_id, plan.first(c), plan.count(c));
    if (!f) {
      todo.push_back(c);
      continue;
    }
    ++res.chunks_resumed;
    resumed_samples += plan.count(c);
    if (o.png && f->contains("images")) {
      const int64_t S = e.pipeline->image_size();
      Tensor im = f->get("images", DType::U8, {plan.count(c), S, S, 3});
      write_pngs(o, plan, c, im.data<uint8_t>(), S, /*only_missing=*/true);
    }
  }
  if (size > 1 || res.chunks_resumed > 0)
    log::info("sample: ", todo.size(), " of ", mine, " chunk(s) to sample on this rank (",
              res.chunks_resumed, " already done)");
  // Rank 0's own share stands for everyone's (equal shares up to one chunk); a resumed job counts
  // what is left, estimated from rank 0's finished chunks.
  int64_t share = 0, done = 0;
  for (int64_t c : todo) share += plan.count(c);
  eval::ProgressBar progress(res.chunks_resumed > 0 ? "sample (resumed)" : "sample",
                             std::max<int64_t>(plan.samples - resumed_samples * size, share), share,
                             rank == 0, o.progress_seconds);
  const auto t0 = Clock::now();
  std::vector<BatchTime> times;
  for (int64_t c : todo) {
    std::vector<uint8_t> images;
    Tensor latents;
    sample_chunk(o, e, plan, c, images, latents, progress, done, times);
    std::map<std::string, Tensor> out;
    const int64_t n = plan.count(c);
    Tensor labels = Tensor::empty({n}, DType::I32);
    std::copy_n(o.labels.begin() + plan.first(c), n, labels.data<int32_t>());
    out["labels"] = labels;
    if (e.pipeline) {
      const int64_t S = e.pipeline->image_size();
      if (o.png) write_pngs(o, plan, c, images.data(), S, /*only_missing=*/false);
      out["images"] =
          Tensor::from_blob(images.data(), {n, S, S, 3}, DType::U8, Device::cpu(), nullptr);
    }
    if (o.keep_latents) out["latents"] = latents;
    safetensors::save(
        chunk_path(o.out_dir, c), out,
        {{"job", job_id}, {"first", std::to_string(plan.first(c))}, {"count", std::to_string(n)}});
    ++res.chunks_written;
  }
  progress.finish();
  const double sampling_s = seconds_since(t0);
  if (!o.report_path.empty()) write_report(o, e, times, sampling_s, rank, size);
  const double timeout = distributed::DistOptions::from_env().timeout_s;  // the watchdog's
  wait_for_all(world, timeout + 3 * sampling_s + 60, "finish their chunks");
  if (rank == 0) {
    const int64_t S = e.pipeline ? e.pipeline->image_size() : 0;
    assemble(o, plan, job_id, S, e.model.tokens, e.model.channels, e.stats, res);
    write_file_atomic(o.out_dir + "/job.json",
                      json{{"settings", settings}, {"complete", true}}.dump(2) + "\n");
    log::info("sample: wrote ", plan.samples, " samples",
              res.npz_path.empty() ? "" : " to " + res.npz_path,
              res.grid_path.empty() ? "" : " and " + res.grid_path,
              o.keep_latents ? " (latents: " + o.out_dir + "/latents.npz)" : "");
  }
  const double assemble_budget = static_cast<double>(plan.samples) * 1e-3 + 1.0;  // ~1 ms/sample
  wait_for_all(world, timeout + 60 * assemble_budget, "see rank 0 write the outputs");
  return res;
}

}  // namespace rae::sampling
