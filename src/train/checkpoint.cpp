#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rae::train {

namespace {

const char* kFiles[] = {"model.safetensors", "ema.safetensors", "optimizer.safetensors",
                        "state.json"};

std::map<std::string, Tensor> with_buffers(const nn::ParamStore& ps,
                                           std::map<std::string, Tensor> m) {
  auto sd = ps.state_dict();
  for (auto& n : ps.buffer_names()) m[n] = sd.at(n);
  return m;
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%07lld", static_cast<long long>(step));
  return buf;
}

std::string write_checkpoint(const std::string& run_dir, const nn::ParamStore& ps, Ema& ema,
                             AdamW& adam, const RunState& st, int64_t keep_last,
                             int64_t keep_every) {
  fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const std::string name = checkpoint_name(st.step);
  fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::map<std::string, std::string> meta = {{"step", std::to_string(st.step)},
                                                   {"dit_config", st.model_config}};
  safetensors::save((tmp / "model.safetensors").string(), ps.state_dict(), meta);
  safetensors::save((tmp / "ema.safetensors").string(),
                    with_buffers(ps, ps.views_of(ema.buffers())), meta);
  std::map<std::string, Tensor> opt;
  for (auto& [n, t] : ps.views_of(adam.m())) opt["m." + n] = t;
  for (auto& [n, t] : ps.views_of(adam.v())) opt["v." + n] = t;
  safetensors::save((tmp / "optimizer.safetensors").string(), opt,
                    {{"adam_step", std::to_string(adam.step_count())}});
  json s = {{"step", st.step},
            {"samples_seen", st.samples_seen},
            {"adam_step", st.adam_step},
            {"bad_in_row", st.bad_in_row},
            {"skipped_total", st.skipped_total},
            {"seed", st.seed},
            {"preset", st.preset},
            {"data", st.data}};
  write_file_atomic((tmp / "state.json").string(), s.dump(2) + "\n");
  json m = {{"format", "rae-checkpoint"},
            {"version", 1},
            {"step", st.step},
            {"checksum_algorithm", kChecksumAlgorithm},
            {"files", json::object()}};
  for (const char* f : kFiles) {
    std::string p = (tmp / f).string();
    fsync_path(p);
    m["files"][f] = {{"bytes", fs::file_size(p)}, {"checksum", file_checksum(p)}};
  }
  write_file_atomic((tmp / "manifest.json").string(), m.dump(2) + "\n");
  fsync_path(tmp.string());
  fs::remove_all(final_dir);
  rename_durable(tmp.string(), final_dir.string());

  // Retention: the newest keep_last, plus multiples of keep_every.
  auto all = list_checkpoints(run_dir);
  for (size_t i = static_cast<size_t>(keep_last); i < all.size(); ++i) {
    int64_t step = std::stoll(fs::path(all[i]).filename().string().substr(5));
    if (keep_every > 0 && step % keep_every == 0) continue;
    fs::remove_all(all[i]);
  }
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::exists(root)) return {};
  for (auto& e : fs::directory_iterator(root)) {
    std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step-", 0) != 0) continue;
    try {
      found.emplace_back(std::stoll(n.substr(5)), e.path().string());
    } catch (const std::exception&) {
    }
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string verify_checkpoint(const std::string& dir) {
  try {
    std::ifstream in(fs::path(dir) / "manifest.json");
    if (!in.good()) return "missing manifest.json";
    json m = json::parse(in);
    for (const char* f : kFiles) {
      if (!m["files"].contains(f)) return std::string("manifest lacks ") + f;
      std::string p = (fs::path(dir) / f).string();
      if (!fs::exists(p)) return std::string("missing ") + f;
      if (fs::file_size(p) != m["files"][f]["bytes"].get<uint64_t>())
        return std::string("size mismatch for ") + f;
      if (m["files"][f]["checksum"].get<std::string>() != file_checksum(p))
        return std::string("checksum mismatch for ") + f;
    }
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return "";
}

std::optional<std::string> latest_valid_checkpoint(const std::string& run_dir) {
  for (auto& d : list_checkpoints(run_dir)) {
    std::string problem = verify_checkpoint(d);
    if (problem.empty()) return d;
    log::warn("checkpoint ", d, " is corrupt (", problem, "); skipping it");
  }
  return std::nullopt;
}

void load_checkpoint(const std::string& dir, nn::ParamStore& ps, Ema* ema, AdamW* adam,
                     RunState* st) {
  fs::path d(dir);
  {
    auto f = safetensors::load((d / "model.safetensors").string());
    ps.load_state_dict(f.tensors, f.path);
  }
  if (ema) {
    auto f = safetensors::load((d / "ema.safetensors").string());
    auto views = ps.views_of(ema->buffers());
    for (auto& [n, t] : views) t.copy_from(f.get(n, DType::F32, t.shape()));
  }
  if (adam) {
    auto f = safetensors::load((d / "optimizer.safetensors").string());
    for (auto& [n, t] : ps.views_of(adam->m())) t.copy_from(f.get("m." + n, DType::F32, t.shape()));
    for (auto& [n, t] : ps.views_of(adam->v())) t.copy_from(f.get("v." + n, DType::F32, t.shape()));
  }
  std::ifstream in(d / "state.json");
  RAE_CHECK(in.good(), "missing ", (d / "state.json").string());
  json s = json::parse(in);
  if (st) {
    st->step = s.at("step").get<int64_t>();
    st->samples_seen = s.at("samples_seen").get<int64_t>();
    st->adam_step = s.at("adam_step").get<int64_t>();
    st->bad_in_row = s.at("bad_in_row").get<int64_t>();
    st->skipped_total = s.at("skipped_total").get<int64_t>();
    st->seed = s.at("seed").get<uint64_t>();
    st->preset = s.at("preset").get<std::string>();
    st->data = s.at("data");
  }
  if (adam) adam->set_step_count(s.at("adam_step").get<int64_t>());
}

}  // namespace rae::train
