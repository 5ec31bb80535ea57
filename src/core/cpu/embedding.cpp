// The sinusoidal timestep embedding of the reference code, in float32 as PyTorch
// computes it: f_i = exp(i * -(ln 10000 / (half - 1))), out = [sin(t f) | cos(t f)].
#include <cmath>

#include "core/cpu/cpu_ops.h"

namespace ddpm {

// out [N, dim] from t [N]
void CpuOps::timestep_embedding(float* out, const float* t, int N, int dim) {
  const int half = dim / 2;
  const float step = static_cast<float>(-(std::log(10000.0) / std::max(half - 1, 1)));
  for (int n = 0; n < N; ++n) {
    float* row = out + static_cast<int64_t>(n) * dim;
    for (int i = 0; i < half; ++i) {
      const float arg = t[n] * std::exp(static_cast<float>(i) * step);
      row[i] = std::sin(arg);
      row[half + i] = std::cos(arg);
    }
    if (dim % 2 == 1) row[dim - 1] = 0.0f;
  }
}

}  // namespace ddpm
