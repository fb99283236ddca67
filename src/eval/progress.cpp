#include "eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace rae::eval {

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t share, bool enabled,
                         double interval_s)
    : label_(std::move(label)),
      total_(total),
      share_(share),
      enabled_(enabled),
      tty_(isatty(fileno(stderr)) != 0),
      interval_s_(interval_s),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

std::string ProgressBar::format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  return buf;
}

void ProgressBar::update(int64_t done) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.25 : interval_s_)) return;
  last_ = now;
  print(done, false);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  print(share_, true);
}

void ProgressBar::print(int64_t done, bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // This rank's fraction stands for everyone's.
  const double frac = share_ > 0 ? static_cast<double>(done) / static_cast<double>(share_) : 1.0;
  const int64_t global = final ? total_ : static_cast<int64_t>(frac * static_cast<double>(total_));
  const double rate = elapsed > 0 ? static_cast<double>(global) / elapsed : 0;
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : -1;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %5.1f%% %.0f img/s %s %s%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), static_cast<long long>(global),
               static_cast<long long>(total_), 100.0 * frac, rate, final ? "took" : "ETA",
               format_duration(final ? elapsed : eta).c_str(), (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace rae::eval
