// Elementwise and data-movement kernels: swish, dropout, the per-example channel bias
// of the time embedding, nearest x2 upsampling and 2x2 average pooling (all NHWC).
#include <cmath>
#include <cstring>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/philox_x16.h"
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
namespace {
#if DDPM_HAVE_PHILOX_X16 && defined(__BMI2__)
#define DDPM_DROPOUT_X16 1
// Whole groups of 16 Philox blocks (64 elements) of one example's v, 16 blocks per
// AVX-512 call; returns how many blocks it did. The same masks as the scalar loop.
int64_t dropout_x16(float* v, int64_t per_example, float p, float keep_scale, const DropoutKey& key, uint32_t index,
                    u32x2 philox) {
  // uniform01(bits) >= p  <=>  (bits >> 8) >= ceil(p * 2^24): both sides are exact.
  const __m512i threshold = _mm512_set1_epi32(static_cast<int>(std::ceil(double{p} * 16777216.0)));
  const __m512 scale = _mm512_set1_ps(keep_scale), zero = _mm512_setzero_ps();
  // Word j of block b is element 4 b + j: word j's 16 lanes go to every fourth bit.
  constexpr uint64_t kWordBits[4] = {0x1111111111111111ull, 0x2222222222222222ull, 0x4444444444444444ull,
                                     0x8888888888888888ull};
  const int64_t groups = per_example / 64;
  for (int64_t g = 0; g < groups; ++g) {
    const Philox16 r = philox4x32_10_x16(
        philox_counter(Purpose::kDropout, key.layer, key.step, index, static_cast<uint32_t>(g * 16)), philox);
    uint64_t keep = 0;  // bit e: element 64 g + e is kept
    for (int j = 0; j < 4; ++j) {
      const __m512i bits24 = _mm512_maskz_srli_epi32(0xFFFF, r.word[j], 8);  // maskz: see philox_x16.h
      keep |= _pdep_u64(_mm512_cmpge_epu32_mask(bits24, threshold), kWordBits[j]);
    }
    float* out = v + g * 64;
    for (int q = 0; q < 4; ++q) {  // x * (keep ? scale : 0), as the scalar loop rounds it
      const __m512 factor = _mm512_mask_blend_ps(static_cast<__mmask16>(keep >> (16 * q)), zero, scale);
      _mm512_storeu_ps(out + 16 * q, _mm512_mul_ps(_mm512_loadu_ps(out + 16 * q), factor));
    }
  }
  return groups * 16;
}
#endif
}  // namespace

void CpuOps::dropout_apply(float* x, float p, const DropoutKey& key, int N, int64_t per_example) {
  if (p <= 0.0f) return;
  const float keep_scale = 1.0f / (1.0f - p);
  const u32x2 k = philox_key(key.seed);
  const int64_t blocks = (per_example + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    float* v = x + n * per_example;
    const uint32_t index = key.example_base + static_cast<uint32_t>(n);
    int64_t blk = 0;
#if DDPM_DROPOUT_X16
    blk = dropout_x16(v, per_example, p, keep_scale, key, index, k);
#endif
    for (; blk < blocks; ++blk) {
      const u32x4 r = philox4x32_10(
          philox_counter(Purpose::kDropout, key.layer, key.step, index, static_cast<uint32_t>(blk)), k);
      for (int j = 0; j < 4 && blk * 4 + j < per_example; ++j)
        v[blk * 4 + j] *= uniform01(r[j]) >= p ? keep_scale : 0.0f;
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
