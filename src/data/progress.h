// A progress bar on stderr: done/total, images/s and the time left. On a terminal it
// redraws one line (at most 10 times a second); otherwise it prints a line every 10 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ddpm::data {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled);
  void update(int64_t done);
  void finish();  // final line with the overall rate
  double seconds() const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_;
  Clock::time_point start_, last_draw_;
  void draw(bool final_line);
};

// "1:02:03" or "2:03".
std::string format_duration(double seconds);

}  // namespace ddpm::data
