// Linear layers and 1x1 convolutions (the same matrix product in NHWC) through cuBLAS.
// Row-major [M, C] is column-major [C, M], so each row-major product below is written
// as the column-major product of the transposes (CudaOps::gemm).
#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

// out [M, O] = bias (or += bias when accumulate)
__global__ void bias_rows_kernel(float* out, bool accumulate, const float* b, int64_t M, int O) {
  DDPM_GRID_STRIDE(i, M * O) {
    const float v = b[i % O];
    out[i] = accumulate ? out[i] + v : v;
  }
}

int checked_int(int64_t M) {
  DDPM_CHECK(M <= INT32_MAX, "matrix with ", M, " rows");
  return static_cast<int>(M);
}

}  // namespace

// out [M, O] (+= when accumulate) = in [M, C] · w [O, C]^T + b [O]
// column-major (X' is row-major X read column-major): out' [O, M] = (w' [C, O])^T · in' [C, M]
void CudaOps::linear_forward(float* out, bool accumulate, const float* in, const float* w, const float* b, int64_t M,
                             int C, int O) {
  bias_rows_kernel<<<cuda::grid_for(M * O), cuda::kThreads, 0, stream_>>>(out, accumulate, b, M, O);
  DDPM_CHECK_LAUNCH();
  gemm(true, false, O, checked_int(M), C, 1.0f, w, C, 0, in, C, 0, 1.0f, out, O, 0);
}

// din [M, C] = dout [M, O] · w [O, C]        column-major: din' [C, M] = w' [C, O] · dout' [O, M]
// dw [O, C] += dout^T · in                   column-major: dw' [C, O] += in' [C, M] · (dout' [O, M])^T
// db [O] += column sums of dout
void CudaOps::linear_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                              const float* w, int64_t M, int C, int O) {
  const int m = checked_int(M);
  if (din != nullptr) gemm(false, false, C, m, O, 1.0f, w, C, 0, dout, O, 0, accumulate ? 1.0f : 0.0f, din, C, 0);
  gemm(false, true, C, O, m, 1.0f, in, C, 0, dout, O, 0, 1.0f, dw, C, 0);
  add_column_sums(db, dout, M, O);
}

}  // namespace ddpm
