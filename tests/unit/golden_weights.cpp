#include "golden_weights.h"

#include <algorithm>
#include <stdexcept>

#include "core/rng.h"

namespace ddpm::testing {
namespace {
constexpr float kSpread1d = 0.125f;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::vector<float> golden_tensor(const std::string& name, const std::vector<int64_t>& shape, uint64_t seed) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const bool is_matrix = shape.size() >= 2;
  const bool is_weight = ends_with(name, ".weight"), is_bias = ends_with(name, ".bias");
  if (!is_matrix && !is_weight && !is_bias) throw std::invalid_argument("no golden rule for the 1-D tensor " + name);
  // Computed in double and rounded once, exactly as params.cpp and philox.py do.
  const float limit = is_matrix ? static_cast<float>(fan_avg_uniform_limit(shape, 1.0)) : 0.0f;

  const u32x2 key = philox_key(seed);
  const uint32_t stream = fnv1a32(name.c_str());
  std::vector<float> out(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; i += 4) {
    const u32x4 bits =
        philox4x32_10(philox_counter(Purpose::kTest, 0, 0, stream, static_cast<uint32_t>(i / 4)), key);
    for (int64_t j = i; j < std::min(i + 4, numel); ++j) {
      const float v = 2.0f * uniform01(bits[j - i]) - 1.0f;  // exact
      float value;
      if (is_matrix) value = v * limit;
      else if (is_weight) value = 1.0f + v * kSpread1d;  // v / 8 is exact: one rounding
      else value = v * kSpread1d;
      out[static_cast<size_t>(j)] = value;
    }
  }
  return out;
}

void fill_golden_weights(const ParamLayout& layout, float* params, uint64_t seed) {
  for (const ParamInfo& p : layout.params()) {
    const std::vector<float> values = golden_tensor(p.name, p.shape, seed);
    std::copy(values.begin(), values.end(), params + p.offset);
  }
}

}  // namespace ddpm::testing
