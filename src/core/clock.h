// Seconds on a monotonic clock, for timings and timeouts.
#pragma once

#include <chrono>

namespace ddpm {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace ddpm
