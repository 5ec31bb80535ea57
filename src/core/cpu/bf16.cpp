// bf16 on the CPU (device.precision: bf16): which bf16 kernels oneDNN has on this CPU (and
// its vendor, where the CPUs measured differ by it),
// and the fp32 -> bf16 rounding of the products' inputs.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/cpu/cpu_ops.h"

namespace ddpm {
namespace {

bool isa_includes(dnnl::cpu_isa isa, dnnl::cpu_isa feature) {
  const unsigned bits = static_cast<unsigned>(feature);
  return (static_cast<unsigned>(isa) & bits) == bits;  // oneDNN's ISA values nest as bit sets
}

// Round to nearest even, as oneDNN's reorders and CUDA's __float2bfloat16 round; NaN
// stays a (quiet) NaN instead of rounding into infinity.
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t nan_bits = (u >> 16) | 0x40u;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan_bits : rounded);
}

// out[0..n) = bf16(in[0..n)).
void row_to_bf16(uint16_t* out, const float* in, int64_t n) {
  int64_t c = 0;
#if defined(__AVX512BF16__)
  // vcvtneps2bf16 rounds as bf16_bits does (nearest even, NaN stays a quiet NaN) except
  // that denormal inputs become ±0, as in oneDNN's own conversions on these CPUs; it
  // runs at memory speed where the scalar form did not.
  for (; c + 16 <= n; c += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c), reinterpret_cast<const __m256i&>(h));
  }
#endif
#pragma omp simd
  for (int64_t i = c; i < n; ++i) out[i] = bf16_bits(in[i]);
}

}  // namespace

CpuBf16Support cpu_bf16_support() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (isa_includes(isa, dnnl::cpu_isa::avx512_core_amx)) return CpuBf16Support::kAmx;
  if (isa_includes(isa, dnnl::cpu_isa::avx512_core_bf16)) return CpuBf16Support::kAvx512Bf16;
  return CpuBf16Support::kNone;
}

bool cpu_is_amd() {
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
}

const char* cpu_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

// dst [rows, cols] (dense) = bf16(src [rows, cols], row stride ld)
void CpuOps::to_bf16(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  if (rows == 1 || ld == cols) {  // one dense span: split it evenly over the threads
    const int64_t n = rows * cols, chunk = int64_t{1} << 14;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n; c += chunk) row_to_bf16(dst + c, src + c, std::min(chunk, n - c));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) row_to_bf16(dst + r * cols, src + r * ld, cols);
}

}  // namespace ddpm
