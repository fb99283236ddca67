#include "train/checkpoint.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "train/run_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rae::train {

namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kState = "state.json";
constexpr const char* kExtras = "extras.safetensors";
const char* const kKinds[] = {"param", "ema", "adam_m", "adam_v"};

std::string shard_file(int k, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "shard-%05d-of-%05d.safetensors", k, n);
  return buf;
}

std::string piece_key(const std::string& model, const std::string& kind, const std::string& tensor,
                      int64_t offset) {
  return model + "/" + kind + "/" + tensor + "@" + std::to_string(offset);
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  RAE_CHECK(in.good(), "cannot read ", p.string());
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    RAE_THROW(p.string(), ": not JSON: ", e.what());
  }
}

// The owned shard tensors of a model for one kind, in bucket order.
const std::vector<Tensor>& shards_of(const TrainedModel& m, const std::string& kind) {
  if (kind == "param") return m.params->masters();
  if (kind == "ema") return m.optimizer->ema();
  if (kind == "adam_m") return m.optimizer->m();
  return m.optimizer->v();
}

// Test hook: the process dies here (SIGKILL, no cleanup) when RAE_TEST_KILL_CHECKPOINT names
// the point.
void maybe_die(const char* point) {
  const char* at = std::getenv("RAE_TEST_KILL_CHECKPOINT");
  if (at && std::string(at) == point) {
    std::fprintf(stderr, "RAE_TEST_KILL_CHECKPOINT=%s: killing myself in the checkpoint writer\n",
                 point);
    std::fflush(stderr);
    std::raise(SIGKILL);
  }
}

// The manifest's description of `m`: type, config, buffers, and per tensor the pieces of every
// shard rank (the same for every kind).
json model_entry(const TrainedModel& m, int shards) {
  const nn::ParamStore& ps = m.module->params();
  json tensors = json::object();
  for (const auto& p : ps.params()) {
    json shape = json::array();
    for (int64_t d : p.shape) shape.push_back(d);
    tensors[p.name] = {{"shape", shape}, {"dtype", "F32"}, {"pieces", json::array()}};
  }
  for (int r = 0; r < shards; ++r)
    for (const auto& pc : m.params->pieces(r))
      tensors[ps.params()[pc.param].name]["pieces"].push_back(
          {{"file", shard_file(r, shards)}, {"offset", pc.begin}, {"numel", pc.end - pc.begin}});
  json buffers = json::array();
  for (const auto& b : ps.buffer_names()) buffers.push_back(b);
  return {{"name", m.name},          {"type", m.spec.type},
          {"config", m.spec.config}, {"tensors", tensors},
          {"buffers", buffers},      {"kinds", {"param", "ema", "adam_m", "adam_v"}}};
}

void write_shard_file(const std::string& path, const std::vector<TrainedModel*>& models, int r,
                      int64_t step) {
  std::map<std::string, Tensor> t;
  for (const TrainedModel* m : models) {
    const nn::ParamStore& ps = m->module->params();
    for (const auto& pc : m->params->pieces(r))
      for (const char* kind : kKinds)
        t[piece_key(m->name, kind, ps.params()[pc.param].name, pc.begin)] =
            shards_of(*m, kind)[pc.bucket].narrow(0, pc.shard_offset, pc.end - pc.begin);
  }
  safetensors::save(path, t, {{"step", std::to_string(step)}, {"shard", std::to_string(r)}});
}

void write_extras(const std::string& path, const std::vector<TrainedModel*>& models,
                  const Objective& objective, json* artifacts) {
  std::map<std::string, Tensor> t, art;
  std::map<std::string, std::string> meta;
  for (const TrainedModel* m : models) {
    const nn::ParamStore& ps = m->module->params();
    for (size_t i = 0; i < ps.buffer_names().size(); ++i)
      t[m->name + "/buffer/" + ps.buffer_names()[i]] = ps.buffer(static_cast<int>(i));
  }
  objective.artifacts(art, meta);
  json names = json::array();
  for (auto& [n, v] : art) {
    t["artifact/" + n] = v;
    names.push_back(n);
  }
  *artifacts = {{"tensors", names}, {"metadata", meta}};
  safetensors::save(path, t, meta);
}

// Reads element ranges of stored tensors from whichever shard files hold them.
class PieceReader {
 public:
  PieceReader(fs::path dir, const json& entry) : dir_(std::move(dir)), entry_(entry) {}
  // Copies elements [begin, end) of `kind` of tensor `name` into dst (end - begin elements).
  void read(const std::string& model, const std::string& kind, const std::string& name,
            int64_t begin, int64_t end, Tensor dst) {
    const json& pieces = entry_.at("tensors").at(name).at("pieces");
    int64_t covered = 0;
    for (const json& p : pieces) {
      const int64_t off = p.at("offset").get<int64_t>(), n = p.at("numel").get<int64_t>();
      const int64_t lo = std::max(begin, off), hi = std::min(end, off + n);
      if (lo >= hi) continue;
      const std::string fname = p.at("file").get<std::string>();
      Tensor src = file(fname).get(piece_key(model, kind, name, off), DType::F32, Shape{n});
      dst.narrow(0, lo - begin, hi - lo).copy_from(src.narrow(0, lo - off, hi - lo));
      covered += hi - lo;
    }
    RAE_CHECK(covered == end - begin, (dir_ / kManifest).string(), ": tensor '", name,
              "' elements [", begin, ", ", end, ") are not all stored (", covered, " found)");
  }
  const safetensors::File& file(const std::string& name) {
    auto it = files_.find(name);
    if (it == files_.end())
      it = files_.emplace(name, safetensors::load((dir_ / name).string())).first;
    return it->second;
  }

 private:
  fs::path dir_;
  const json& entry_;
  std::map<std::string, safetensors::File> files_;
};

// The shape of a tensor entry of the manifest, after checking its dtype (pieces are F32) and
// shape (non-negative integers); errors name the tensor and `where` (the manifest).
Shape stored_shape(const json& info, const std::string& name, const std::string& where) {
  const std::string dtype = info.value("dtype", "");
  RAE_CHECK(dtype == "F32", where, ": tensor '", name, "' is declared with dtype '", dtype,
            "', checkpoints store F32");
  const json& js = info.at("shape");
  RAE_CHECK(js.is_array(), where, ": tensor '", name, "' has shape ", js.dump());
  Shape shape;
  for (const json& x : js) {
    RAE_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0, where, ": tensor '", name,
              "' has shape ", js.dump());
    shape.push_back(x.get<int64_t>());
  }
  return shape;
}

const json& find_model(const json& manifest, const std::string& name, const std::string& where) {
  for (const json& m : manifest.at("models"))
    if (m.at("name").get<std::string>() == name) return m;
  std::string have;
  for (const json& m : manifest.at("models")) have += " '" + m.at("name").get<std::string>() + "'";
  RAE_THROW(where, ": no model '", name, "' (the checkpoint has", have, ")");
}

}  // namespace

// ---- run state ----

json RunState::to_json() const {
  return {{"step", step},
          {"samples_seen", samples_seen},
          {"bad_in_row", bad_in_row},
          {"skipped_total", skipped_total},
          {"seed", seed},
          {"data", data},
          {"data_signature", data_signature},
          {"adam_steps", adam_steps},
          {"loss_mean", loss_mean},
          {"loss_steps", loss_steps}};
}

RunState RunState::from_json(const json& j, const std::string& where) {
  RunState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.samples_seen = j.at("samples_seen").get<int64_t>();
    s.bad_in_row = j.at("bad_in_row").get<int64_t>();
    s.skipped_total = j.at("skipped_total").get<int64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.data = j.at("data");
    s.data_signature = j.at("data_signature").get<std::string>();
    s.adam_steps = j.at("adam_steps").get<std::map<std::string, int64_t>>();
    s.loss_mean = j.value("loss_mean", 0.0);
    s.loss_steps = j.value("loss_steps", int64_t{0});
  } catch (const std::exception& e) {
    RAE_THROW(where, ": bad run state: ", e.what());
  }
  return s;
}

// ---- listing and verification ----

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%07lld", static_cast<long long>(step));
  return buf;
}

int64_t checkpoint_step(const std::string& dir) {
  const std::string n = fs::path(dir).filename().string();
  if (n.size() <= 5 || n.size() > 5 + 18 || n.rfind("step-", 0) != 0) return -1;
  for (size_t i = 5; i < n.size(); ++i)
    if (n[i] < '0' || n[i] > '9') return -1;
  return std::stoll(n.substr(5));
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::exists(root)) return {};
  for (auto& e : fs::directory_iterator(root)) {
    const int64_t step = checkpoint_step(e.path().string());
    if (e.is_directory() && step >= 0) found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string verify_checkpoint(const std::string& dir) {
  try {
    const fs::path d(dir);
    if (!fs::exists(d / kManifest)) return "missing manifest.json";
    json m = read_json(d / kManifest);
    if (m.value("format", "") != kCheckpointFormat)
      return "format '" + m.value("format", "") + "', expected '" + kCheckpointFormat + "'";
    if (m.value("version", 0) != kCheckpointVersion)
      return "version " + std::to_string(m.value("version", 0)) + ", this build reads version " +
             std::to_string(kCheckpointVersion);
    if (m.value("checksum_algorithm", "") != kChecksumAlgorithm)
      return "checksum algorithm '" + m.value("checksum_algorithm", "") + "'";
    for (auto& [f, info] : m.at("files").items()) {
      const std::string p = (d / f).string();
      if (!fs::exists(p)) return "missing " + f;
      if (fs::file_size(p) != info.at("bytes").get<uint64_t>()) return "size mismatch for " + f;
      if (info.at("checksum").get<std::string>() != file_checksum(p))
        return "checksum mismatch for " + f;
    }
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return "";
}

CheckpointScan scan_checkpoints(const std::string& run_dir) {
  CheckpointScan scan;
  for (auto& d : list_checkpoints(run_dir)) {
    std::string problem = verify_checkpoint(d);
    if (problem.empty()) {
      scan.valid = d;
      break;
    }
    scan.invalid.emplace_back(d, problem);
  }
  return scan;
}

std::optional<std::string> latest_valid_checkpoint(const std::string& run_dir) {
  CheckpointScan scan = scan_checkpoints(run_dir);
  for (auto& [d, problem] : scan.invalid)
    log::warn("checkpoint ", d, " is corrupt (", problem, "); skipping it");
  return scan.valid;
}

std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep_last,
                                           int64_t keep_every) {
  const std::vector<std::string> all = list_checkpoints(run_dir);
  std::vector<std::string> victims;
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep_last, 1)); i < all.size(); ++i) {
    const int64_t step = checkpoint_step(all[i]);
    if (keep_every > 0 && step % keep_every == 0) continue;
    victims.push_back(all[i]);
  }
  if (victims.empty()) return {};
  // Only below a newest checkpoint that verifies: retention must never leave a run without a
  // valid checkpoint. (A full read of the newest, in the page cache right after its save.)
  const std::string problem = verify_checkpoint(all.front());
  if (!problem.empty()) {
    log::warn("checkpoint retention: the newest checkpoint ", all.front(), " does not verify (",
              problem, "); no checkpoint is deleted");
    return {};
  }
  for (const std::string& v : victims) fs::remove_all(v);
  return victims;
}

// ---- writing ----

std::string save_checkpoint(const std::string& run_dir, const std::vector<TrainedModel*>& models,
                            const Objective& objective, const RunState& st, int64_t keep_last,
                            int64_t keep_every, distributed::Communicator* world) {
  RAE_CHECK(!models.empty(), "save_checkpoint: no models");
  const bool lead = !world || world->rank() == 0;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::string name = checkpoint_name(st.step);
  const fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  if (lead) {
    fs::create_directories(root);
    fs::remove_all(tmp);  // a crashed earlier attempt
    fs::create_directories(tmp);
  }
  distributed::barrier(world);
  const distributed::ShardedParams& sp = *models.front()->params;
  const int S = sp.shard_count();
  // Writers save their shard files in parallel.
  std::vector<int64_t> mine = {-1, 0, 0};  // shard rank (-1: not a writer), bytes, checksum
  if (sp.writes_shards()) {
    const std::string path = (tmp / shard_file(sp.shard_rank(), S)).string();
    write_shard_file(path, models, sp.shard_rank(), st.step);
    uint64_t bytes = 0;
    const std::string sum = file_checksum(path, &bytes);
    mine = {sp.shard_rank(), static_cast<int64_t>(bytes),
            static_cast<int64_t>(std::stoull(sum, nullptr, 16))};
  }
  const std::vector<int64_t> all = distributed::all_gather_i64(world, mine);
  std::string out;
  if (lead) {
    maybe_die("shards");
    json m = {{"format", kCheckpointFormat},
              {"version", kCheckpointVersion},
              {"step", st.step},
              {"checksum_algorithm", kChecksumAlgorithm},
              {"written_by",
               {{"world_size", world ? world->size() : 1},
                {"strategy", distributed::strategy_name(sp.options().strategy)},
                {"shards", S}}},
              {"files", json::object()},
              {"models", json::array()}};
    int written = 0;
    for (size_t r = 0; r < all.size(); r += 3) {
      if (all[r] < 0) continue;
      m["files"][shard_file(static_cast<int>(all[r]), S)] = {
          {"bytes", all[r + 1]}, {"checksum", checksum_hex(static_cast<uint64_t>(all[r + 2]))}};
      ++written;
    }
    RAE_CHECK(written == S, "checkpoint: ", written, " shard files written, expected ", S);
    for (const TrainedModel* tm : models) m["models"].push_back(model_entry(*tm, S));
    json artifacts;
    write_extras((tmp / kExtras).string(), models, objective, &artifacts);
    m["artifacts"] = artifacts;
    write_file_atomic((tmp / kState).string(), st.to_json().dump(2) + "\n");
    for (const char* f : {kExtras, kState}) {
      uint64_t bytes = 0;
      const std::string sum = file_checksum((tmp / f).string(), &bytes);
      m["files"][f] = {{"bytes", bytes}, {"checksum", sum}};
    }
    write_file_atomic((tmp / kManifest).string(), m.dump(1) + "\n");
    fsync_path(tmp.string());
    maybe_die("manifest");
    // (resume sets aside invalid checkpoints newer than the one it loads, so this is rare: a
    // run directory changed by hand while training)
    if (fs::exists(final_dir))
      set_aside(run_dir, {final_dir.string()}, {},
                "a new checkpoint of the same step was written (" + final_dir.string() + ")");
    rename_durable(tmp.string(), final_dir.string());
    prune_checkpoints(run_dir, keep_last, keep_every);
    out = final_dir.string();
  }
  distributed::barrier(world);
  return out;
}

// ---- reading ----

RunState load_checkpoint(const std::string& dir, const std::vector<TrainedModel*>& models,
                         distributed::Communicator* world) {
  const fs::path d(dir);
  const std::string where = (d / kManifest).string();
  json manifest = read_json(d / kManifest);
  RAE_CHECK(manifest.value("format", "") == kCheckpointFormat &&
                manifest.value("version", 0) == kCheckpointVersion,
            where, ": format '", manifest.value("format", ""), "' version ",
            manifest.value("version", 0), "; this build reads '", kCheckpointFormat, "' version ",
            kCheckpointVersion);
  RAE_CHECK(manifest.at("models").size() == models.size(), where, ": ",
            manifest.at("models").size(), " model(s), this run trains ", models.size());
  safetensors::File extras = safetensors::load((d / kExtras).string());
  for (TrainedModel* m : models) {
    const json& entry = find_model(manifest, m->name, where);
    RAE_CHECK(
        entry.at("type").get<std::string>() == m->spec.type && entry.at("config") == m->spec.config,
        where, ": model '", m->name, "' is ", entry.at("type").get<std::string>(), " ",
        entry.at("config").dump(), " in the checkpoint, ", m->spec.str(), " in this run");
    nn::ParamStore& ps = m->module->params();
    std::set<std::string> stored;
    for (auto& [n, t] : entry.at("tensors").items()) stored.insert(n);
    for (const auto& p : ps.params()) {
      RAE_CHECK(stored.count(p.name), where, ": model '", m->name, "' lacks tensor '", p.name, "'");
      const Shape shape = stored_shape(entry.at("tensors").at(p.name), p.name, where);
      RAE_CHECK(shape == p.shape, where, ": tensor '", p.name, "' has shape ", shape.str(),
                " in the checkpoint, ", p.shape.str(), " in the model");
      stored.erase(p.name);
    }
    RAE_CHECK(stored.empty(), where, ": model '", m->name, "' has no tensor '", *stored.begin(),
              "' of the checkpoint");
    PieceReader reader(d, entry);
    for (const auto& pc : m->params->pieces(m->params->shard_rank())) {
      const std::string& name = ps.params()[pc.param].name;
      for (const char* kind : kKinds)
        reader.read(m->name, kind, name, pc.begin, pc.end,
                    shards_of(*m, kind)[pc.bucket].narrow(0, pc.shard_offset, pc.end - pc.begin));
    }
    for (size_t i = 0; i < ps.buffer_names().size(); ++i) {
      const std::string key = m->name + "/buffer/" + ps.buffer_names()[i];
      const Tensor& b = ps.buffer(static_cast<int>(i));
      Tensor(b).copy_from(extras.get(key, DType::F32, b.shape()));
    }
    m->params->publish();
  }
  RunState st = RunState::from_json(read_json(d / kState), (d / kState).string());
  for (TrainedModel* m : models) {
    auto it = st.adam_steps.find(m->name);
    RAE_CHECK(it != st.adam_steps.end(), (d / kState).string(), ": no AdamW step count for '",
              m->name, "'");
    m->optimizer->set_step_count(it->second);
  }
  distributed::barrier(world);
  return st;
}

std::vector<std::pair<std::string, models::ModelSpec>> checkpoint_models(const std::string& dir) {
  const fs::path d(dir);
  json manifest = read_json(d / kManifest);
  std::vector<std::pair<std::string, models::ModelSpec>> out;
  try {
    for (const json& m : manifest.at("models"))
      out.push_back(
          {m.at("name").get<std::string>(), {m.at("type").get<std::string>(), m.at("config")}});
  } catch (const json::exception& e) {
    RAE_THROW((d / kManifest).string(), ": bad model list: ", e.what());
  }
  return out;
}

ExportedModel consolidate_checkpoint(const std::string& dir, const std::string& model_name,
                                     bool ema) {
  const std::string problem = verify_checkpoint(dir);
  RAE_CHECK(problem.empty(), "checkpoint ", dir, " does not verify: ", problem);
  const fs::path d(dir);
  const std::string where = (d / kManifest).string();
  json manifest = read_json(d / kManifest);
  const json& entry = find_model(manifest, model_name, where);
  ExportedModel out;
  std::map<std::string, Tensor>& t = out.tensors;
  PieceReader reader(d, entry);
  for (auto& [name, info] : entry.at("tensors").items()) {
    const Shape shape = stored_shape(info, name, where);
    Tensor v = Tensor::empty(shape);
    reader.read(model_name, ema ? "ema" : "param", name, 0, shape.numel(), v.flatten());
    t[name] = v;
  }
  safetensors::File extras = safetensors::load((d / kExtras).string());
  for (const json& b : entry.at("buffers"))
    t[b.get<std::string>()] = extras.get(model_name + "/buffer/" + b.get<std::string>());
  std::map<std::string, std::string>& meta = out.metadata;
  meta = manifest.at("artifacts").at("metadata").get<std::map<std::string, std::string>>();
  for (const json& a : manifest.at("artifacts").at("tensors"))
    t[a.get<std::string>()] = extras.get("artifact/" + a.get<std::string>());
  models::spec_to_metadata({entry.at("type").get<std::string>(), entry.at("config")}, meta);
  meta["step"] = std::to_string(manifest.at("step").get<int64_t>());
  meta["weights"] = ema ? "ema" : "model";
  return out;
}

void export_checkpoint(const std::string& dir, const std::string& model_name, bool ema,
                       const std::string& out) {
  ExportedModel m = consolidate_checkpoint(dir, model_name, ema);
  safetensors::save(out, m.tensors, m.metadata);
}

}  // namespace rae::train
