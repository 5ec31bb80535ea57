// Device-side helpers shared by the CUDA layer files: launch shapes, the Philox
// generator of core/rng.h, and the deterministic per-channel reduction that GroupNorm,
// the bias gradients and sum_over_hw are built on.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda/cuda_ops.h"

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

// --- Philox4x32-10, bit for bit as core/rng.h ------------------------------------------

struct Philox4 {
  uint32_t v[4];
};

__host__ __device__ inline Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr.v[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

// core/rng.h's philox_counter: {block, index, step, purpose << 24 | sub_id}.
__host__ __device__ inline Philox4 philox_counter(uint32_t purpose, uint32_t sub_id, uint32_t step, uint32_t index,
                                                  uint32_t block) {
  return Philox4{{block, index, step, (purpose << 24) | (sub_id & 0xFFFFFFu)}};
}

__device__ inline float uniform01(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

// core/rng.h's box_muller, in double on the device too.
__device__ inline void box_muller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const double u1 = (static_cast<double>(a >> 8) + 1.0) * (1.0 / 16777216.0);
  const double u2 = static_cast<double>(b >> 8) * (1.0 / 16777216.0);
  const double r = sqrt(-2.0 * log(u1));
  const double th = 6.283185307179586 * u2;
  double s, c;
  sincos(th, &s, &c);
  *z0 = static_cast<float>(r * c);
  *z1 = static_cast<float>(r * s);
}

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

}  // namespace cuda
}  // namespace ddpm
