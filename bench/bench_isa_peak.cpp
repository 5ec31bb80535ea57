// One core's peak for the two instructions that fp32 and bf16 products are made of on
// an AVX-512 CPU without AMX: vfmadd231ps (16 multiply-adds) and vdpbf16ps (32), each in
// 16 independent chains so that latency does not limit them. Where vdpbf16ps retires as
// often as vfmadd231ps (AMD Zen 5) bf16 can run twice fp32's speed; where it retires half
// as often (the Intel Xeons measured) it cannot beat fp32 (docs/performance.md).
// Prints `isa_peak fma_gflops=G dpbf16_gflops=G` (one thread; pin it with taskset).
#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

#define DDPM_CHAINS(OP) \
  OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11) OP(12) OP(13) OP(14) OP(15)
#define DDPM_FMA(i) "vfmadd231ps %%zmm16, %%zmm17, %%zmm" #i "\n"
#define DDPM_DPBF16(i) "vdpbf16ps %%zmm16, %%zmm17, %%zmm" #i "\n"
#define DDPM_CLOBBERS                                                                                            \
  "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
      "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17"

// `iterations` rounds of 16 instructions; zmm16/zmm17 are zero so no value overflows.
__attribute__((target("avx512f"))) void fma_rounds(long iterations) {
  asm volatile(
      "vpxord %%zmm16, %%zmm16, %%zmm16\n vpxord %%zmm17, %%zmm17, %%zmm17\n"
      "1:\n" DDPM_CHAINS(DDPM_FMA) "dec %0\n jnz 1b\n"
      : "+r"(iterations)
      :
      : DDPM_CLOBBERS);
}
__attribute__((target("avx512f,avx512bf16"))) void dpbf16_rounds(long iterations) {
  asm volatile(
      "vpxord %%zmm16, %%zmm16, %%zmm16\n vpxord %%zmm17, %%zmm17, %%zmm17\n"
      "1:\n" DDPM_CHAINS(DDPM_DPBF16) "dec %0\n jnz 1b\n"
      : "+r"(iterations)
      :
      : DDPM_CLOBBERS);
}

// GFLOP/s of `rounds` (16 instructions of `flops` each per round), the best of 3 runs.
template <class F>
double best_gflops(F rounds, long iterations, double flops) {
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    rounds(iterations);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, iterations * 16.0 * flops / s * 1e-9);
  }
  return best;
}

}  // namespace

int main() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("bench_isa_peak: this CPU has no AVX-512\n");
    return 0;
  }
  const long iterations = 20000000;
  const double fma = best_gflops(fma_rounds, iterations, 2 * 16);
  std::printf("vfmadd231ps zmm: %.1f GFLOP/s on one core\n", fma);
  double dpbf16 = 0;
  if (__builtin_cpu_supports("avx512bf16")) {
    dpbf16 = best_gflops(dpbf16_rounds, iterations, 2 * 32);
    std::printf("vdpbf16ps zmm:   %.1f GFLOP/s on one core (%.2fx fp32)\n", dpbf16, dpbf16 / fma);
  } else {
    std::printf("this CPU has no AVX512-BF16\n");
  }
  std::printf("isa_peak fma_gflops=%.1f dpbf16_gflops=%.1f\n", fma, dpbf16);
  return 0;
}
