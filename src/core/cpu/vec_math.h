// exp and sigmoid written so that GCC vectorises them inside `omp simd` loops (glibc
// only offers vector expf under -ffast-math, which the golden tests cannot afford).
// expf_fast: Cody-Waite range reduction and a degree-6 polynomial; max relative error
// about 2 ulp over [-87, 88] (checked in tests/unit/test_cpu_kernels.cpp).
#pragma once

#include <cstdint>
#include <cstring>

namespace ddpm {

#pragma omp declare simd notinbranch
inline float expf_fast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick: branch-free and call-free, so the loop
  // vectorises (roundf is a libm call).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // r = x - n ln2, with ln2 split in a high part exact in float and a low part.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

#pragma omp declare simd notinbranch
inline float sigmoid_fast(float x) { return 1.0f / (1.0f + expf_fast(-x)); }

}  // namespace ddpm
