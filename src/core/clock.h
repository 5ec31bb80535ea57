// Seconds on a monotonic clock, for timings and timeouts, and the median the
// benchmarks report.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace ddpm {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The median of timing samples (the upper middle one of an even count); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace ddpm
