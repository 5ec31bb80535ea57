// The sinusoidal timestep embedding, as cpu/embedding.cpp: float32 like PyTorch,
// f_i = exp(i * step) with step = -(ln 10000 / (half - 1)), out = [sin(t f) | cos(t f)].
#include <cmath>

#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

// out [N, dim] from t [N]
__global__ void timestep_embedding_kernel(float* out, const float* t, int N, int dim, float step) {
  const int half = dim / 2;
  DDPM_GRID_STRIDE(i, static_cast<int64_t>(N) * dim) {
    const int64_t n = i / dim;
    const int j = static_cast<int>(i % dim);
    if (j >= 2 * half) {
      out[i] = 0.0f;  // odd dim: the last column is zero padding
      continue;
    }
    const int f = j < half ? j : j - half;
    const float arg = t[n] * expf(static_cast<float>(f) * step);
    out[i] = j < half ? sinf(arg) : cosf(arg);
  }
}

}  // namespace

void CudaOps::timestep_embedding(float* out, const float* t, int N, int dim) {
  const int half = dim / 2;
  const float step = static_cast<float>(-(std::log(10000.0) / std::max(half - 1, 1)));  // as the CPU, in double
  timestep_embedding_kernel<<<cuda::grid_for(static_cast<int64_t>(N) * dim), cuda::kThreads, 0, stream_>>>(
      out, t, N, dim, step);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
