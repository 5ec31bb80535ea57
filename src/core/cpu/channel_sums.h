// Deterministic per-channel sums on the CPU (the CUDA half is cuda::channel_sums in
// kernels.cuh): for a tensor viewed as [N, HW, C], two sums over p per (n, c), in double,
// in a fixed order. Each image's rows are split into chunks that depend on the sizes
// only (never on the thread count); chunk partials are added in chunk order. GroupNorm's
// statistics and gradients and the linear layers' bias gradients are built on it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/cpu/cpu_ops.h"

namespace ddpm {

// [N, C] totals of the two sums, in CpuOps's kSlotReduceTotal (valid until its next use).
struct ChannelTotals {
  const double* a;
  const double* b;
};

// Enough chunks for N * chunks >= 64 tasks (64 threads busy), at least 16 rows each.
inline int sum_chunks_per_image(int N, int HW) { return std::max(1, std::min((64 + N - 1) / N, HW / 16)); }

// f(n, p, a, b) adds row p of image n into a[0..C) and b[0..C).
template <typename F>
ChannelTotals channel_sums(CpuOps& ops, int N, int HW, int C, F&& f) {
  const int chunks = sum_chunks_per_image(N, HW);
  const int64_t NC = static_cast<int64_t>(N) * C, part_n = NC * chunks;
  double* part = ops.scratch_as<double>(kSlotReducePartial, 2 * part_n);  // a [N, chunks, C], then b
  double* total = ops.scratch_as<double>(kSlotReduceTotal, 2 * NC);       // a [N, C], then b
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < chunks; ++k) {
      double* pa = part + (static_cast<int64_t>(n) * chunks + k) * C;
      double* pb = pa + part_n;
      for (int c = 0; c < C; ++c) pa[c] = pb[c] = 0.0;
      const int lo = static_cast<int>(static_cast<int64_t>(HW) * k / chunks);
      const int hi = static_cast<int>(static_cast<int64_t>(HW) * (k + 1) / chunks);
      for (int p = lo; p < hi; ++p) f(n, p, pa, pb);
    }
  }
  for (int64_t i = 0; i < 2 * NC; ++i) total[i] = 0.0;
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < chunks; ++k) {
      const double* pa = part + (static_cast<int64_t>(n) * chunks + k) * C;
      const double* pb = pa + part_n;
      double* ta = total + static_cast<int64_t>(n) * C;
      double* tb = ta + NC;
      for (int c = 0; c < C; ++c) {
        ta[c] += pa[c];
        tb[c] += pb[c];
      }
    }
  return {total, total + NC};
}

}  // namespace ddpm
