// Elementwise and data-movement kernels: swish, dropout, the per-example channel bias
// of the time embedding, nearest x2 upsampling and 2x2 average pooling (all NHWC).
#include <cstring>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/vec_math.h"
#include "core/rng.h"

namespace ddpm {

void CpuOps::swish_forward(float* out, const float* in, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * sigmoid_fast(in[i]);
}

void CpuOps::swish_backward(float* din, const float* dout, const float* in, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid_fast(in[i]);
    din[i] = dout[i] * (s * (1.0f + in[i] * (1.0f - s)));
  }
}

// Element e of example n is kept when its uniform draw is >= p; kept values are
// scaled by 1 / (1 - p) so the expectation is unchanged (as torch.nn.Dropout).
void CpuOps::dropout_apply(float* x, float p, const DropoutKey& key, int N, int64_t per_example) {
  if (p <= 0.0f) return;
  const float keep_scale = 1.0f / (1.0f - p);
  const u32x2 k = philox_key(key.seed);
  const int64_t blocks = (per_example + 3) / 4;
  // Whole blocks of four in a straight-line loop (vectorised over blocks), the tail apart.
  const int64_t full = per_example / 4;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    float* v = x + n * per_example;
    const uint32_t index = key.example_base + static_cast<uint32_t>(n);
#pragma omp simd
    for (int64_t blk = 0; blk < full; ++blk) {
      const u32x4 r = philox4x32_10(
          philox_counter(Purpose::kDropout, key.layer, key.step, index, static_cast<uint32_t>(blk)), k);
      for (int j = 0; j < 4; ++j) v[blk * 4 + j] *= uniform01(r[j]) >= p ? keep_scale : 0.0f;
    }
    for (int64_t blk = full; blk < blocks; ++blk) {
      const u32x4 r = philox4x32_10(
          philox_counter(Purpose::kDropout, key.layer, key.step, index, static_cast<uint32_t>(blk)), k);
      for (int j = 0; j < 4 && blk * 4 + j < per_example; ++j) v[blk * 4 + j] *= uniform01(r[j]) >= p ? keep_scale : 0.0f;
    }
  }
}

void CpuOps::add_channel_bias(float* x, const float* bias, int N, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < HW; ++p) {
      float* row = x + (static_cast<int64_t>(n) * HW + p) * C;
      const float* bn = bias + static_cast<int64_t>(n) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) row[c] += bn[c];
    }
}

void CpuOps::sum_over_hw(float* dbias, const float* dx, int N, int HW, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    float* out = dbias + static_cast<int64_t>(n) * C;
    for (int c = 0; c < C; ++c) out[c] = 0.0f;
    for (int p = 0; p < HW; ++p) {
      const float* row = dx + (static_cast<int64_t>(n) * HW + p) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) out[c] += row[c];
    }
  }
}

// out [N, 2H, 2W, C] from in [N, H, W, C]
void CpuOps::upsample2x_forward(float* out, const float* in, int N, int H, int W, int C) {
  const int Ho = 2 * H, Wo = 2 * W;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int y = 0; y < Ho; ++y)
      for (int x = 0; x < Wo; ++x)
        std::memcpy(out + ((static_cast<int64_t>(n) * Ho + y) * Wo + x) * C,
                    in + ((static_cast<int64_t>(n) * H + y / 2) * W + x / 2) * C, sizeof(float) * C);
}

// din [N, H, W, C] = sum of the 2x2 block of dout [N, 2H, 2W, C]
void CpuOps::upsample2x_backward(float* din, const float* dout, int N, int H, int W, int C) {
  const int Wo = 2 * W;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        float* d = din + ((static_cast<int64_t>(n) * H + y) * W + x) * C;
        const float* a = dout + ((static_cast<int64_t>(n) * 2 * H + 2 * y) * Wo + 2 * x) * C;
        const float* b = a + static_cast<int64_t>(Wo) * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) d[c] = (a[c] + a[C + c]) + (b[c] + b[C + c]);
      }
}

// out [N, H/2, W/2, C] = mean of each 2x2 block of in [N, H, W, C]
void CpuOps::avgpool2x_forward(float* out, const float* in, int N, int H, int W, int C) {
  const int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int y = 0; y < Ho; ++y)
      for (int x = 0; x < Wo; ++x) {
        float* o = out + ((static_cast<int64_t>(n) * Ho + y) * Wo + x) * C;
        const float* a = in + ((static_cast<int64_t>(n) * H + 2 * y) * W + 2 * x) * C;
        const float* b = a + static_cast<int64_t>(W) * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) o[c] = ((a[c] + a[C + c]) + (b[c] + b[C + c])) * 0.25f;
      }
}

void CpuOps::avgpool2x_backward(float* din, bool accumulate, const float* dout, int N, int H, int W, int C) {
  const int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        float* d = din + ((static_cast<int64_t>(n) * H + y) * W + x) * C;
        const float* g = dout + ((static_cast<int64_t>(n) * Ho + y / 2) * Wo + x / 2) * C;
        if (accumulate) {
#pragma omp simd
          for (int c = 0; c < C; ++c) d[c] += 0.25f * g[c];
        } else {
#pragma omp simd
          for (int c = 0; c < C; ++c) d[c] = 0.25f * g[c];
        }
      }
}

}  // namespace ddpm
