#include "sampling/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/log.h"

namespace rae::sampling {

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Progress::Progress(std::string what, int64_t total, int64_t done_before, double interval_s,
                   bool enabled, int64_t scale)
    : what_(std::move(what)),
      total_(total),
      before_(done_before),
      scale_(scale),
      interval_(interval_s),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

std::string Progress::hms(double s) {
  if (!(s >= 0) || s > 1e8) return "--:--:--";
  const long v = static_cast<long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
  return buf;
}

void Progress::advance(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  if (since(last_) >= (tty_ ? 0.2 : interval_)) print(false);
}

void Progress::finish() {
  if (enabled_ && (done_ != printed_ || tty_)) print(true);
}

void Progress::print(bool final) {
  last_ = std::chrono::steady_clock::now();
  printed_ = done_;
  const double el = since(start_);
  const int64_t done = std::min(total_, before_ + done_ * scale_);
  const double rate = done_ * scale_ / std::max(el, 1e-9);
  const double eta = rate > 0 ? (total_ - done) / rate : -1;
  const int width = 30;
  const int fill =
      total_ > 0 ? static_cast<int>(width * static_cast<double>(done) / total_) : width;
  std::string bar = std::string(fill, '#') + std::string(width - fill, '.');
  char line[256];
  std::snprintf(line, sizeof line, "%s [%s] %lld/%lld images, %.2f images/s, ETA %s", what_.c_str(),
                bar.c_str(), static_cast<long long>(done), static_cast<long long>(total_), rate,
                hms(eta).c_str());
  if (tty_) {
    std::fprintf(stderr, "\r%s%s", line, final ? "\n" : "");
    std::fflush(stderr);
  } else {
    log::info(line);
  }
}

}  // namespace rae::sampling
