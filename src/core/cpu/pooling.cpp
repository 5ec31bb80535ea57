// The forward-only layers of the evaluation's Inception network (all NHWC): ReLU, max
// and average pooling over the in-bounds taps of each window (core/pool_math.h, shared
// with the CUDA kernels) and the global average pool before its classifier.
#include <algorithm>

#include "core/common.h"
#include "core/cpu/cpu_ops.h"
#include "core/pool_math.h"

namespace ddpm {
namespace {

// For every output pixel: o (its C channels) = the first in-bounds tap's channels, then
// combine(o, row) for each further tap in order, then finish(o, taps). One output pixel
// per iteration, channels innermost.
template <typename Combine, typename Finish>
void for_each_window(float* out, const float* in, const PoolSpec& s, Combine combine, Finish finish) {
  DDPM_CHECK(s.pad < s.K && s.out_h() > 0 && s.out_w() > 0, "bad pool spec");
  const int Ho = s.out_h(), Wo = s.out_w(), C = s.C;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < s.N; ++n)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox) {
        float* o = out + ((static_cast<int64_t>(n) * Ho + oy) * Wo + ox) * C;
        const PoolWindow w = pool_window(s, oy, ox);
        for (int y = w.y0; y < w.y1; ++y)
          for (int x = w.x0; x < w.x1; ++x) {
            const float* row = in + ((static_cast<int64_t>(n) * s.H + y) * s.W + x) * C;
            if (y == w.y0 && x == w.x0) std::copy(row, row + C, o);
            else combine(o, row);
          }
        finish(o, w.taps());
      }
}

}  // namespace

void CpuOps::relu_forward(float* out, const float* in, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void CpuOps::maxpool_forward(float* out, const float* in, const PoolSpec& s) {
  const int C = s.C;
  auto keep_larger = [C](float* o, const float* row) {
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = row[c] > o[c] ? row[c] : o[c];
  };
  for_each_window(out, in, s, keep_larger, [](float*, int) {});
}

void CpuOps::avgpool_forward(float* out, const float* in, const PoolSpec& s) {
  const int C = s.C;
  auto add = [C](float* o, const float* row) {
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] += row[c];
  };
  auto divide_by_taps = [C](float* o, int taps) {
    const float count = static_cast<float>(taps);
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] /= count;
  };
  for_each_window(out, in, s, add, divide_by_taps);
}

void CpuOps::global_avgpool_forward(float* out, const float* in, int N, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      const float* x = in + static_cast<int64_t>(n) * HW * C + c;
      double sum = 0.0;
      for (int p = 0; p < HW; ++p) sum += x[static_cast<int64_t>(p) * C];
      out[static_cast<int64_t>(n) * C + c] = static_cast<float>(sum / HW);
    }
}

}  // namespace ddpm
