// bf16 on the CPU (device.precision: bf16): which bf16 kernels oneDNN has on this CPU,
// and the fp32 -> bf16 rounding of the products' inputs.
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

}  // namespace

CpuBf16Support cpu_bf16_support() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (isa_includes(isa, dnnl::cpu_isa::avx512_core_amx)) return CpuBf16Support::kAmx;
  if (isa_includes(isa, dnnl::cpu_isa::avx512_core_bf16)) return CpuBf16Support::kAvx512Bf16;
  return CpuBf16Support::kNone;
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
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = src + r * ld;
    uint16_t* out = dst + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] = bf16_bits(in[c]);
  }
}

}  // namespace ddpm
