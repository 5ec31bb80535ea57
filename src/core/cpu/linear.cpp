// Linear layers and 1x1 convolutions (the same matrix product in NHWC), through the
// cached matmul primitives of CpuOps::gemm (matmul.cpp), as cuda/linear.cu does through
// cuBLAS.
#include "core/common.h"
#include "core/cpu/channel_sums.h"
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
  gemm(false, true, M, O, C, 1.0f, in, C, w, C, true, out, O);
}

// din [M, C] = dout [M, O] · w [O, C];  dw [O, C] += dout^T · in;  db [O] += column sums
// of dout, in double with a fixed order (channel_sums), as CUDA's add_column_sums
void CpuOps::linear_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                             const float* w, int64_t M, int C, int O) {
  DDPM_CHECK(M <= INT32_MAX, "linear_backward: ", M, " rows");
  if (din != nullptr) gemm(false, false, M, C, O, 1.0f, dout, O, w, C, accumulate, din, C);
  gemm(true, false, O, C, M, 1.0f, dout, O, in, C, true, dw, C);
  const ChannelTotals sums = channel_sums(*this, 1, static_cast<int>(M), O, [&](int, int p, double* a, double*) {
    const float* row = dout + static_cast<int64_t>(p) * O;
#pragma omp simd
    for (int o = 0; o < O; ++o) a[o] += row[o];
  });
  for (int o = 0; o < O; ++o) db[o] += static_cast<float>(sums.a[o]);
}

}  // namespace ddpm
