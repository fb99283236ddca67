// rae status RUN_DIR [--json] [--verify] [--window N]
// Where a run stands, from its run directory alone (no scheduler, no process): step of total,
// latest and mean loss, throughput, ETA at that throughput, when it last logged, and its
// checkpoints. Reads config.cfg ([train] steps, global_batch_size), metrics.jsonl and the
// checkpoint directories; --verify also checks the newest checkpoint against its manifest.
#include <sys/stat.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "train/checkpoint.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rae::cli {

namespace {

// "section.key" -> value of an INI file (the run's effective config, whatever command wrote it).
std::map<std::string, std::string> read_ini(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line, section;
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      section = trim(line.substr(1, line.size() - 2));
    } else if (auto eq = line.find('='); eq != std::string::npos) {
      out[section + "." + trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
  }
  return out;
}

double age_seconds(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return std::difftime(std::time(nullptr), st.st_mtime);
}

std::string format_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "unknown";
  const long long t = std::llround(s);
  char buf[64];
  if (t >= 86400)
    std::snprintf(buf, sizeof buf, "%lldd %02lldh %02lldm", t / 86400, t % 86400 / 3600,
                  t % 3600 / 60);
  else if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", t / 3600, t % 3600 / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%lldm %02llds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%llds", t);
  return buf;
}

// The step of a checkpoint directory from its name (the trailing number: step-0000040).
int64_t checkpoint_step(const std::string& dir) {
  const std::string n = fs::path(dir).filename().string();
  const auto p = n.find_last_not_of("0123456789");
  return p + 1 < n.size() ? std::stoll(n.substr(p + 1)) : -1;
}

json collect_status(const std::string& run, int window, bool verify) {
  RAE_CHECK(fs::is_directory(run), "run directory '", run, "' does not exist");
  json st = {{"run_dir", run}};
  const auto cfg = read_ini((fs::path(run) / "config.cfg").string());
  int64_t total = -1, batch = -1;
  if (cfg.count("train.steps")) total = std::stoll(cfg.at("train.steps"));
  if (cfg.count("train.global_batch_size")) batch = std::stoll(cfg.at("train.global_batch_size"));
  st["total_steps"] = total;

  // metrics.jsonl: the last `window` well-formed lines (a line cut by a kill is skipped).
  const std::string mpath = (fs::path(run) / "metrics.jsonl").string();
  std::deque<json> recent;
  int64_t logged = 0;
  {
    std::ifstream in(mpath);
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("step")) continue;
      ++logged;
      recent.push_back(std::move(j));
      if (static_cast<int>(recent.size()) > window) recent.pop_front();
    }
  }
  st["logged_steps"] = logged;
  if (!recent.empty()) {
    const json& last = recent.back();
    st["step"] = last["step"];
    if (last.contains("loss")) st["loss"] = last["loss"];
    double loss_sum = 0, rate_sum = 0;
    int n_loss = 0, n_rate = 0;
    for (const json& j : recent) {
      if (j.contains("loss") && j["loss"].is_number())
        loss_sum += j["loss"].get<double>(), ++n_loss;
      if (j.contains("samples_per_s") && j["samples_per_s"].is_number())
        rate_sum += j["samples_per_s"].get<double>(), ++n_rate;
    }
    if (n_loss) st["loss_mean"] = loss_sum / n_loss;
    if (n_rate) {
      const double rate = rate_sum / n_rate;
      st["samples_per_s"] = rate;
      if (batch > 0) st["steps_per_s"] = rate / static_cast<double>(batch);
      const int64_t step = last["step"].get<int64_t>();
      if (total >= 0 && batch > 0 && rate > 0)
        st["eta_s"] = static_cast<double>(std::max<int64_t>(total - step, 0) * batch) / rate;
    }
    st["window"] = static_cast<int>(recent.size());
    st["last_logged_s_ago"] = age_seconds(mpath);
  } else {
    st["step"] = 0;
  }

  json ckpts = json::array();
  for (const std::string& d : train::list_checkpoints(run))
    ckpts.push_back({{"step", checkpoint_step(d)}, {"path", d}, {"age_s", age_seconds(d)}});
  st["checkpoints"] = ckpts;
  if (!ckpts.empty()) {
    json last = ckpts.front();
    if (verify) {
      const std::string problem = train::verify_checkpoint(last["path"]);
      last["verified"] = problem.empty();
      if (!problem.empty()) last["problem"] = problem;
    }
    st["last_checkpoint"] = last;
  }
  const int64_t step = st["step"].get<int64_t>();
  st["state"] =
      total >= 0 && step >= total && !ckpts.empty() && ckpts.front()["step"].get<int64_t>() >= total
          ? "finished"
          : "incomplete";
  return st;
}

void print_status(const json& st) {
  auto num = [](const json& j, const char* k, const char* fmt) {
    if (!j.contains(k)) return std::string("-");
    char b[64];
    std::snprintf(b, sizeof b, fmt, j[k].get<double>());
    return std::string(b);
  };
  const int64_t step = st["step"].get<int64_t>(), total = st["total_steps"].get<int64_t>();
  std::printf("run         %s (%s)\n", st["run_dir"].get<std::string>().c_str(),
              st["state"].get<std::string>().c_str());
  if (total > 0)
    std::printf("step        %lld / %lld (%.1f%%)\n", static_cast<long long>(step),
                static_cast<long long>(total), 100.0 * static_cast<double>(step) / total);
  else
    std::printf("step        %lld\n", static_cast<long long>(step));
  std::printf("loss        %s (last), %s (mean of the last %d logged steps)\n",
              num(st, "loss", "%.5g").c_str(), num(st, "loss_mean", "%.5g").c_str(),
              st.value("window", 0));
  std::printf("throughput  %s samples/s, %s steps/s\n", num(st, "samples_per_s", "%.1f").c_str(),
              num(st, "steps_per_s", "%.3f").c_str());
  std::printf("ETA         %s (at that throughput)\n",
              st.contains("eta_s") ? format_duration(st["eta_s"].get<double>()).c_str() : "-");
  if (st.contains("last_logged_s_ago"))
    std::printf("last logged %s ago (metrics.jsonl)\n",
                format_duration(st["last_logged_s_ago"].get<double>()).c_str());
  if (st.contains("last_checkpoint")) {
    const json& c = st["last_checkpoint"];
    std::string v;
    if (c.contains("verified"))
      v = c["verified"].get<bool>() ? "  [verified]"
                                    : "  [CORRUPT: " + c["problem"].get<std::string>() + "]";
    std::printf("checkpoint  step %lld, %s ago: %s%s (%zu kept)\n",
                static_cast<long long>(c["step"].get<int64_t>()),
                format_duration(c["age_s"].get<double>()).c_str(),
                c["path"].get<std::string>().c_str(), v.c_str(), st["checkpoints"].size());
  } else {
    std::printf("checkpoint  none yet\n");
  }
}

}  // namespace

int cmd_status(int argc, char** argv) {
  po::options_description opts("rae status options");
  opts.add_options()("help,h", "show this help")("run-dir", po::value<std::string>(),
                                                 "run directory (also the first argument)")(
      "json", po::bool_switch(), "print one JSON object instead of text")(
      "verify", po::bool_switch(), "check the newest checkpoint against its manifest")(
      "window", po::value<int>()->default_value(20),
      "logged steps averaged for loss and throughput");
  po::positional_options_description pos;
  pos.add("run-dir", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    RAE_THROW(e.what());
  }
  if (vm.count("help")) {
    std::cout << "usage: rae status RUN_DIR [--json] [--verify]\n\n" << opts << "\n";
    return 0;
  }
  RAE_CHECK(vm.count("run-dir"), "missing RUN_DIR (see rae status --help)");
  const int window = vm["window"].as<int>();
  RAE_CHECK(window >= 1, "--window must be >= 1, got ", window);
  const json st = collect_status(vm["run-dir"].as<std::string>(), window, vm["verify"].as<bool>());
  if (vm["json"].as<bool>())
    std::cout << st.dump(2) << "\n";
  else
    print_status(st);
  if (st.contains("last_checkpoint") && st["last_checkpoint"].value("verified", true) == false)
    return 1;
  return 0;
}

}  // namespace rae::cli
