#include "train/run_events.h"

#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "train/checkpoint.h"

namespace rae::train {

std::unique_ptr<tensorboard::Writer> open_run_events(const std::string& run_dir, int64_t step) {
  for (const std::string& f : tensorboard::event_files(run_dir)) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    const std::string kept = tensorboard::filter_events(bytes, step, f);
    if (kept.size() != bytes.size()) write_file_atomic(f, kept);
  }
  return std::make_unique<tensorboard::Writer>(run_dir);
}

void log_step_events(tensorboard::Writer& tb, const nlohmann::json& line) {
  const int64_t step = line.at("step").get<int64_t>();
  tb.add_scalars(step, line, "train/");
  tb.add_scalar("memory/host_peak_rss_gib", step, host_peak_rss_gib());
}

double host_peak_rss_gib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      double kib = 0;
      in >> kib;
      return kib / (1024.0 * 1024.0);
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace rae::train
