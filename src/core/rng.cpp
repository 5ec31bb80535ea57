#include "core/rng.h"

namespace ddpm {

void normal_fill(float* out, int64_t n, uint64_t seed, Purpose purpose, uint32_t sub_id,
                 uint32_t step, uint32_t index) {
  const u32x2 key = philox_key(seed);
  for (int64_t i = 0; i < n; i += 4) {
    const u32x4 r = philox4x32_10(philox_counter(purpose, sub_id, step, index, static_cast<uint32_t>(i / 4)), key);
    float z[4];
    box_muller(r[0], r[1], &z[0], &z[1]);
    box_muller(r[2], r[3], &z[2], &z[3]);
    for (int j = 0; j < 4 && i + j < n; ++j) out[i + j] = z[j];
  }
}

}  // namespace ddpm
