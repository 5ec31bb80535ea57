// Single-head self-attention core, as cpu/attention.cpp, over the whole batch at once:
// batched cuBLAS products for q k^T, p v and their gradients, and one warp per row for
// the softmax and its backward. Row-major [L, C] per image is column-major [C, L].
#include <cmath>

#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

constexpr int kWarpsPerBlock = 8;

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

// Each row of p [rows, L] becomes softmax(row); one warp per row.
__global__ void softmax_rows_kernel(float* p, int64_t rows, int L) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float* r = p + row * L;
  float mx = -INFINITY;
  for (int j = lane; j < L; j += 32) mx = fmaxf(mx, r[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j < L; j += 32) {
    const float e = expf(r[j] - mx);
    r[j] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int j = lane; j < L; j += 32) r[j] *= inv;
}

// ds = p * (dp - rowsum(dp * p)) * scale, in place over dp [rows, L]
__global__ void softmax_backward_rows_kernel(float* ds, const float* p, int64_t rows, int L, float scale) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float* d = ds + row * L;
  const float* pr = p + row * L;
  float dot = 0.0f;
  for (int j = lane; j < L; j += 32) dot += d[j] * pr[j];
  dot = warp_sum(dot);
  for (int j = lane; j < L; j += 32) d[j] = pr[j] * (d[j] - dot) * scale;
}

int row_blocks(int64_t rows) { return static_cast<int>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

// s [L, L] = q k^T scale: column-major s' = (k' [C, L])^T q' [C, L]; a' [C, L] = v' [C, L] p' [L, L]
void CudaOps::attention_forward(float* a, float* p, const float* q, const float* k, const float* v, int N, int L,
                                int C) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(C));
  const int64_t LC = static_cast<int64_t>(L) * C, LL = static_cast<int64_t>(L) * L;
  gemm(true, false, L, L, C, scale, k, C, LC, q, C, LC, 0.0f, p, L, LL, N);
  const int64_t rows = static_cast<int64_t>(N) * L;
  softmax_rows_kernel<<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream_>>>(p, rows, L);
  DDPM_CHECK_LAUNCH();
  gemm(false, false, C, L, L, 1.0f, v, C, LC, p, L, LL, 0.0f, a, C, LC, N);
}

// dp = da v^T; dv = p^T da; ds = p (dp - rowsum(dp p)) scale; dq = ds k; dk = ds^T q
void CudaOps::attention_backward(float* dq, float* dk, float* dv, const float* da, const float* p, const float* q,
                                 const float* k, const float* v, int N, int L, int C) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(C));
  const int64_t LC = static_cast<int64_t>(L) * C, LL = static_cast<int64_t>(L) * L;
  float* ds = scratch_as<float>(kSlotAttnScores, N * LL);
  gemm(true, false, L, L, C, 1.0f, v, C, LC, da, C, LC, 0.0f, ds, L, LL, N);  // dp' = (v')^T da'
  gemm(false, true, C, L, L, 1.0f, da, C, LC, p, L, LL, 0.0f, dv, C, LC, N);  // dv' = da' (p')^T
  const int64_t rows = static_cast<int64_t>(N) * L;
  softmax_backward_rows_kernel<<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream_>>>(ds, p, rows, L, scale);
  DDPM_CHECK_LAUNCH();
  gemm(false, false, C, L, L, 1.0f, k, C, LC, ds, L, LL, 0.0f, dq, C, LC, N);  // dq' = k' ds'
  gemm(false, true, C, L, L, 1.0f, q, C, LC, ds, L, LL, 0.0f, dk, C, LC, N);   // dk' = q' (ds')^T
}

}  // namespace ddpm
