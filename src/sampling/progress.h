// A progress bar for long jobs: images done, images/s and ETA. On a terminal it redraws one line
// of stderr; otherwise (logs, Slurm) it prints a log line every `interval_s` seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace rae::sampling {

class Progress {
 public:
  // `total` items of which `done_before` were done earlier (a resumed job); `scale` multiplies
  // this process's count (ranks doing equal shares report the estimated global progress).
  Progress(std::string what, int64_t total, int64_t done_before, double interval_s, bool enabled,
           int64_t scale = 1);
  void advance(int64_t n);
  void finish();
  static std::string hms(double seconds);  // "01:02:03", "--:--:--" when unknown

 private:
  void print(bool final);
  std::string what_;
  int64_t total_, before_, done_ = 0, scale_, printed_ = -1;
  double interval_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace rae::sampling
