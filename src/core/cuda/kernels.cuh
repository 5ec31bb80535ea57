// Device-side helpers shared by the CUDA layer files: launch shapes, element index
// decomposition, and the deterministic per-channel reduction that GroupNorm, the bias
// gradients and sum_over_hw are built on. Random numbers come from core/rng.h itself
// (host and device).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda/cuda_ops.h"
#include "core/rng.h"

namespace ddpm {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never more than n needs.
inline int grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535 * 8)));
}

#define DDPM_GRID_STRIDE(i, n)                                                                   \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);         \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// The coordinates of flat element i of an [N, H, W, C] tensor.
struct NhwcIndex {
  int64_t n;
  int y, x, c;
};
__device__ inline NhwcIndex nhwc_index(int64_t i, int H, int W, int C) {
  NhwcIndex at;
  at.c = static_cast<int>(i % C);
  int64_t r = i / C;
  at.x = static_cast<int>(r % W);
  r /= W;
  at.y = static_cast<int>(r % H);
  at.n = r / H;
  return at;
}

// Full-precision sigmoid (expf, not __expf): matches the CPU's to a few ulp.
__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// d swish(y) / dy = s (1 + y (1 - s)), s = sigmoid(y), as the CPU writes it.
__device__ inline float swish_grad(float y) {
  const float s = sigmoid(y);
  return s * (1.0f + y * (1.0f - s));
}

template <typename T>
__device__ inline float to_float(T v);
template <>
__device__ inline float to_float<float>(float v) { return v; }
template <>
__device__ inline float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ inline T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) { return v; }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// --- deterministic per-channel sums ---------------------------------------------------
//
// For a tensor viewed as [N, HW, C] and a functor f(n, p, c) -> double2, the sums over
// p of f are computed in two fixed stages: partial[n, k, c] over the rows of chunk k
// (one thread per channel walks its rows in order), then total[n, c] = sum over k in
// chunk order. The chunking depends on the sizes only, so results do not change from
// run to run or with the GPU model.

struct ChannelChunks {
  int chunks = 1;
  int rows_per_chunk = 1;
};

inline ChannelChunks channel_chunks(int N, int HW, int C) {
  const int channel_blocks = (C + kThreads - 1) / kThreads;
  // About 2048 blocks in all, at least 32 rows each.
  const int want = std::max(1, 2048 / std::max(1, N * channel_blocks));
  ChannelChunks k;
  k.chunks = std::max(1, std::min(want, (HW + 31) / 32));
  k.rows_per_chunk = (HW + k.chunks - 1) / k.chunks;
  k.chunks = (HW + k.rows_per_chunk - 1) / k.rows_per_chunk;
  return k;
}

template <typename F>
__global__ void channel_partial_sums_kernel(double2* partial, int HW, int C, ChannelChunks chunks, F f) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int k = blockIdx.y, n = blockIdx.z;
  if (c >= C) return;
  const int lo = k * chunks.rows_per_chunk, hi = min(HW, lo + chunks.rows_per_chunk);
  double2 acc = make_double2(0.0, 0.0);
  for (int p = lo; p < hi; ++p) {
    const double2 v = f(n, p, c);
    acc.x += v.x;
    acc.y += v.y;
  }
  partial[(static_cast<int64_t>(n) * chunks.chunks + k) * C + c] = acc;
}

__global__ void channel_totals_kernel(double2* total, const double2* partial, int N, int C, int chunks);

// total [N, C] (device, slot kSlotReduceTotal) of the sums over p of f(n, p, c); F is a
// functor struct with `__device__ double2 operator()(int n, int p, int c) const`.
template <typename F>
double2* channel_sums(CudaOps& ops, int N, int HW, int C, F f) {
  DDPM_CHECK(N <= 65535, "batch ", N, " too large for one grid dimension");
  const ChannelChunks k = channel_chunks(N, HW, C);
  double2* partial = ops.scratch_as<double2>(kSlotReducePartial, static_cast<int64_t>(N) * k.chunks * C);
  double2* total = ops.scratch_as<double2>(kSlotReduceTotal, static_cast<int64_t>(N) * C);
  const int threads = std::min(kThreads, (C + 31) / 32 * 32);
  const dim3 grid((C + threads - 1) / threads, k.chunks, N);
  channel_partial_sums_kernel<<<grid, threads, 0, ops.stream()>>>(partial, HW, C, k, f);
  DDPM_CHECK_LAUNCH();
  const int64_t nc = static_cast<int64_t>(N) * C;
  channel_totals_kernel<<<grid_for(nc), kThreads, 0, ops.stream()>>>(total, partial, N, C, k.chunks);
  DDPM_CHECK_LAUNCH();
  return total;
}

// The values of x [N, HW, C] themselves, as channel_sums' functor (sum_over_hw, the
// global average pool).
struct PlainValue {
  const float* x;
  int HW, C;
  __device__ double2 operator()(int n, int p, int c) const {
    return make_double2(x[(static_cast<int64_t>(n) * HW + p) * C + c], 0.0);
  }
};

}  // namespace cuda
}  // namespace ddpm
