#include "data/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ddpm::data {

std::string format_duration(double seconds) {
  const long long s = seconds < 0 ? 0 : static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1) {
  start_ = last_draw_ = Clock::now();
}

double ProgressBar::seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void ProgressBar::update(int64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.1 : 10.0)) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::finish() {
  if (enabled_) draw(true);
}

void ProgressBar::draw(bool final_line) {
  const double elapsed = seconds();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  const std::string eta = rate > 0 ? format_duration((total_ - done_) / rate) : "?";
  char line[256];
  if (final_line) {
    std::snprintf(line, sizeof(line), "%s [%s] %lld/%lld  %.0f img/s  took %s", label_.c_str(), bar.c_str(),
                  static_cast<long long>(done_), static_cast<long long>(total_), rate, format_duration(elapsed).c_str());
  } else {
    std::snprintf(line, sizeof(line), "%s [%s] %3.0f%% %lld/%lld  %.0f img/s  ETA %s", label_.c_str(), bar.c_str(),
                  100.0 * frac, static_cast<long long>(done_), static_cast<long long>(total_), rate, eta.c_str());
  }
  std::fprintf(stderr, tty_ ? "\r%s\033[K%s" : "%s%s", line, (final_line || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace ddpm::data
