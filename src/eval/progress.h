// A progress bar on stderr for rank 0: images done, images/s, ETA. On a terminal it redraws one
// line (at most 4 times a second); otherwise (logs, Slurm) it prints a line every `interval_s`.
// Rank 0 sees only its own share: the global count is extrapolated from it (ranks get equal
// shares, so they advance at about the same rate).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace rae::eval {

class ProgressBar {
 public:
  // `total`: images over all ranks; `share`: this rank's part of them; `enabled`: rank 0.
  ProgressBar(std::string label, int64_t total, int64_t share, bool enabled,
              double interval_s = 10.0);
  void update(int64_t done_in_share);
  void finish();  // the final line (always printed when enabled)

  static std::string format_duration(double seconds);  // "1:02:03", "4:05"

 private:
  void print(int64_t done_in_share, bool final);

  std::string label_;
  int64_t total_, share_;
  bool enabled_, tty_;
  double interval_s_;
  std::chrono::steady_clock::time_point start_, last_;
  bool finished_ = false;
};

}  // namespace rae::eval
