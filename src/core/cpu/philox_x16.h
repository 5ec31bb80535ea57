// Philox4x32-10 (core/rng.h) for 16 consecutive blocks at once in AVX-512 registers,
// bit for bit the scalar function: the dropout masks of a training step draw millions
// of blocks, and the scalar 32x32->64 multiplies made dropout a visible part of a step.
// Only where the compiler targets AVX-512 (-march=native on such a CPU); callers keep
// the scalar loop otherwise.
#pragma once

#if defined(__AVX512F__)
#define DDPM_HAVE_PHILOX_X16 1
#include <immintrin.h>

#include "core/rng.h"

namespace ddpm {

// Lane l of the result's word j is word j of philox4x32_10({block0 + l, c1, c2, c3}, key).
struct Philox16 {
  __m512i word[4];
};

namespace philox_x16_detail {
// lo and hi halves of the 16 products a[l] * m (m the same in every lane). The maskz
// forms with every lane set are the plain instructions; GCC 12's plain intrinsics start
// from an "undefined" register and trip -Wmaybe-uninitialized.
inline void mulhilo(__m512i a, __m512i m, __m512i* lo, __m512i* hi) {
  constexpr __mmask8 kAll = 0xFF;
  constexpr __mmask16 kOdd = 0xAAAA;
  const __m512i even = _mm512_maskz_mul_epu32(kAll, a, m);  // 64-bit products of lanes 0, 2, ...
  const __m512i odd = _mm512_maskz_mul_epu32(kAll, _mm512_maskz_srli_epi64(kAll, a, 32), m);  // of lanes 1, 3, ...
  *lo = _mm512_mask_blend_epi32(kOdd, even, _mm512_maskz_slli_epi64(kAll, odd, 32));
  *hi = _mm512_mask_blend_epi32(kOdd, _mm512_maskz_srli_epi64(kAll, even, 32), odd);
}
}  // namespace philox_x16_detail

inline Philox16 philox4x32_10_x16(const u32x4& first, u32x2 key) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i x0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first[0])), lanes);
  __m512i x1 = _mm512_set1_epi32(static_cast<int>(first[1]));
  __m512i x2 = _mm512_set1_epi32(static_cast<int>(first[2]));
  __m512i x3 = _mm512_set1_epi32(static_cast<int>(first[3]));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  for (int round = 0; round < 10; ++round) {
    __m512i lo0, hi0, lo1, hi1;
    philox_x16_detail::mulhilo(x0, m0, &lo0, &hi0);
    philox_x16_detail::mulhilo(x2, m1, &lo1, &hi1);
    const __m512i k0 = _mm512_set1_epi32(static_cast<int>(key[0])), k1 = _mm512_set1_epi32(static_cast<int>(key[1]));
    x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), k0);
    x1 = lo1;
    x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), k1);
    x3 = lo0;
    key[0] += kPhiloxW0;
    key[1] += kPhiloxW1;
  }
  return Philox16{{x0, x1, x2, x3}};
}

}  // namespace ddpm
#endif
