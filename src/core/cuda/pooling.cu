// The forward-only layers of the evaluation's Inception network, as cpu/pooling.cpp:
// ReLU, max and average pooling over each window's in-bounds taps (core/pool_math.h,
// visited in the CPU's order, so the results are the CPU's bits) and the global
// average pool (the deterministic per-channel sums in double of kernels.cuh).
#include "core/cuda/kernels.cuh"
#include "core/pool_math.h"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

__global__ void relu_kernel(float* out, const float* in, int64_t n) {
  DDPM_GRID_STRIDE(i, n) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

// One output element per thread over [N, Ho, Wo, C]: the max, or the mean, of its
// window's in-bounds taps.
template <bool kMax>
__global__ void pool_kernel(float* out, const float* in, PoolSpec s, int Ho, int Wo, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, Ho, Wo, s.C);
    const PoolWindow w = pool_window(s, at.y, at.x);
    const float* image = in + at.n * s.H * s.W * s.C + at.c;
    float acc = 0.0f;
    for (int y = w.y0; y < w.y1; ++y)
      for (int x = w.x0; x < w.x1; ++x) {
        const float v = image[(static_cast<int64_t>(y) * s.W + x) * s.C];
        const bool first = y == w.y0 && x == w.x0;
        acc = first ? v : kMax ? (v > acc ? v : acc) : acc + v;
      }
    out[i] = kMax ? acc : acc / static_cast<float>(w.taps());
  }
}

__global__ void store_means_kernel(float* out, const double2* total, int HW, int64_t n) {
  DDPM_GRID_STRIDE(i, n) out[i] = static_cast<float>(total[i].x / HW);
}

template <bool kMax>
void pool(CudaOps& ops, float* out, const float* in, const PoolSpec& s) {
  DDPM_CHECK(s.pad < s.K && s.out_h() > 0 && s.out_w() > 0, "bad pool spec");
  const int64_t n = static_cast<int64_t>(s.N) * s.out_h() * s.out_w() * s.C;
  pool_kernel<kMax><<<grid_for(n), kThreads, 0, ops.stream()>>>(out, in, s, s.out_h(), s.out_w(), n);
  DDPM_CHECK_LAUNCH();
}

}  // namespace

void CudaOps::relu_forward(float* out, const float* in, int64_t n) {
  if (n <= 0) return;
  relu_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::maxpool_forward(float* out, const float* in, const PoolSpec& spec) { pool<true>(*this, out, in, spec); }

void CudaOps::avgpool_forward(float* out, const float* in, const PoolSpec& spec) { pool<false>(*this, out, in, spec); }

void CudaOps::global_avgpool_forward(float* out, const float* in, int N, int HW, int C) {
  const double2* total = cuda::channel_sums(*this, N, HW, C, cuda::PlainValue{in, HW, C});
  const int64_t n = static_cast<int64_t>(N) * C;
  store_means_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, total, HW, n);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
