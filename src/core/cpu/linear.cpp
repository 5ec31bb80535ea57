// Linear layers and 1x1 convolutions (which in NHWC are the same matrix product).
#include <omp.h>

#include <vector>

#include "core/cpu/cpu_ops.h"

namespace ddpm {

// out [M, O] (+= when accumulate) = in [M, C] · w [O, C]^T + b [O]
void CpuOps::linear_forward(float* out, bool accumulate, const float* in, const float* w, const float* b, int64_t M,
                            int C, int O) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    if (accumulate) {
      for (int o = 0; o < O; ++o) out[m * O + o] += b[o];
    } else {
      for (int o = 0; o < O; ++o) out[m * O + o] = b[o];
    }
  }
  sgemm(false, true, M, O, C, 1.0f, in, C, w, C, 1.0f, out, O);
}

// din [M, C] = dout [M, O] · w [O, C];  dw [O, C] += dout^T · in;  db [O] += sum_m dout
void CpuOps::linear_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                             const float* w, int64_t M, int C, int O) {
  if (din != nullptr) sgemm(false, false, M, C, O, 1.0f, dout, O, w, C, accumulate ? 1.0f : 0.0f, din, C);
  sgemm(true, false, O, C, M, 1.0f, dout, O, in, C, 1.0f, dw, C);
  // Column sums with a fixed split of rows per thread, so the result does not depend
  // on scheduling.
  const int threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(threads) * O, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t lo = M * t / threads, hi = M * (t + 1) / threads;
    float* acc = partial.data() + static_cast<size_t>(t) * O;
    for (int64_t m = lo; m < hi; ++m) {
#pragma omp simd
      for (int o = 0; o < O; ++o) acc[o] += dout[m * O + o];
    }
  }
  for (int t = 0; t < threads; ++t)
    for (int o = 0; o < O; ++o) db[o] += partial[static_cast<size_t>(t) * O + o];
}

}  // namespace ddpm
