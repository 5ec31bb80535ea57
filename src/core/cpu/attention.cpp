// Single-head self-attention core (the q/k/v/proj_out 1x1 convolutions are linear
// layers around it): per image, p = softmax(q k^T / sqrt(C)) over keys, a = p v; the
// products are CpuOps::gemm's cached matmul primitives, as cuda/attention.cu's cuBLAS.
#include <cmath>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/vec_math.h"

namespace ddpm {

// a [N, L, C], p [N, L, L] (saved) from q, k, v [N, L, C]
void CpuOps::attention_forward(float* a, float* p, const float* q, const float* k, const float* v, int N, int L,
                               int C) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(C));
  const int64_t LC = static_cast<int64_t>(L) * C, LL = static_cast<int64_t>(L) * L;
  for (int n = 0; n < N; ++n) {
    float* pn = p + n * LL;
    gemm(false, true, L, L, C, scale, q + n * LC, C, k + n * LC, C, false, pn, L);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < L; ++i) {
      float* row = pn + static_cast<int64_t>(i) * L;
      float mx = row[0];
      for (int j = 1; j < L; ++j) mx = std::max(mx, row[j]);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < L; ++j) {
        row[j] = expf_fast(row[j] - mx);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int j = 0; j < L; ++j) row[j] *= inv;
    }
    gemm(false, false, L, C, L, 1.0f, pn, L, v + n * LC, C, false, a + n * LC, C);
  }
}

// dp = da v^T; dv = p^T da; ds = p * (dp - rowsum(dp * p)) / sqrt(C); dq = ds k; dk = ds^T q
void CpuOps::attention_backward(float* dq, float* dk, float* dv, const float* da, const float* p, const float* q,
                                const float* k, const float* v, int N, int L, int C) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(C));
  const int64_t LC = static_cast<int64_t>(L) * C, LL = static_cast<int64_t>(L) * L;
  float* ds = scratch_as<float>(kSlotAttnScores, LL);
  for (int n = 0; n < N; ++n) {
    const float* pn = p + n * LL;
    gemm(false, true, L, L, C, 1.0f, da + n * LC, C, v + n * LC, C, false, ds, L);
    gemm(true, false, L, C, L, 1.0f, pn, L, da + n * LC, C, false, dv + n * LC, C);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < L; ++i) {
      float* row = ds + static_cast<int64_t>(i) * L;
      const float* prow = pn + static_cast<int64_t>(i) * L;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int j = 0; j < L; ++j) dot += row[j] * prow[j];
#pragma omp simd
      for (int j = 0; j < L; ++j) row[j] = prow[j] * (row[j] - dot) * scale;
    }
    gemm(false, false, L, C, L, 1.0f, ds, L, k + n * LC, C, false, dq + n * LC, C);
    gemm(true, false, L, C, L, 1.0f, ds, L, q + n * LC, C, false, dk + n * LC, C);
  }
}

}  // namespace ddpm
