// The counter-based RNG (src/core/rng.h): Philox4x32-10 against the published
// known-answer vectors, FNV-1a against its reference values, and the properties of the
// uniform conversions that the rest of ddpm relies on.
#define BOOST_TEST_MODULE rng
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <set>
#include <vector>

#include "core/cpu/philox_x16.h"
#include "core/rng.h"
#include "golden_weights.h"

using namespace ddpm;

// Random123 tests/kat_vectors (github.com/DEShawResearch/random123), the three
// "philox4x32 10" lines; columns: counter (4 words), key (2 words), expected (4 words).
// tests/reference/philox.py checks its numpy Philox against the same lines.
BOOST_AUTO_TEST_CASE(philox4x32_10_matches_random123_known_answers) {
  struct Kat {
    u32x4 ctr;
    u32x2 key;
    u32x4 expected;
  };
  const Kat kats[] = {
      {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}, {0x00000000u, 0x00000000u},
       {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const u32x4 got = philox4x32_10(k.ctr, k.key);
    for (int i = 0; i < 4; ++i) BOOST_TEST(got[i] == k.expected[i], "word " << i << " of ctr " << std::hex << k.ctr[0]);
  }
}

#if DDPM_HAVE_PHILOX_X16
// The AVX-512 Philox (core/cpu/philox_x16.h, built where the compiler targets AVX-512):
// every lane equals the scalar function, also where the block counter wraps around.
BOOST_AUTO_TEST_CASE(philox_x16_lanes_equal_the_scalar_function) {
  const u32x2 keys[] = {{{0u, 0u}}, {{0xa4093822u, 0x299f31d0u}}, {{0xffffffffu, 0x12345678u}}};
  const u32x4 firsts[] = {{{0u, 0u, 0u, 0u}}, {{0xfffffff8u, 7u, 100u, 0x02000003u}}, {{12345u, 0xffffffffu, 1u, 2u}}};
  for (const u32x2& key : keys)
    for (const u32x4& first : firsts) {
      const Philox16 r = philox4x32_10_x16(first, key);
      uint32_t words[4][16];
      for (int j = 0; j < 4; ++j) _mm512_storeu_si512(words[j], r.word[j]);
      for (uint32_t lane = 0; lane < 16; ++lane) {
        const u32x4 want = philox4x32_10(u32x4{{first[0] + lane, first[1], first[2], first[3]}}, key);
        for (int j = 0; j < 4; ++j) BOOST_TEST(words[j][lane] == want[j], "lane " << lane << " word " << j);
      }
    }
}
#endif

// FNV-1a 32-bit reference values (the FNV test suite: "", "a", "foobar").
BOOST_AUTO_TEST_CASE(fnv1a32_matches_reference_values) {
  BOOST_TEST(fnv1a32("") == 0x811c9dc5u);
  BOOST_TEST(fnv1a32("a") == 0xe40c292cu);
  BOOST_TEST(fnv1a32("foobar") == 0xbf9cf968u);
}

BOOST_AUTO_TEST_CASE(counter_layout_separates_purposes) {
  const u32x4 c = philox_counter(Purpose::kTest, 5, 7, 11, 13);
  BOOST_TEST(c[0] == 13u);
  BOOST_TEST(c[1] == 11u);
  BOOST_TEST(c[2] == 7u);
  BOOST_TEST(c[3] == ((8u << 24) | 5u));
  const u32x2 key = philox_key(0x0123456789abcdefull);
  BOOST_TEST(key[0] == 0x89abcdefu);
  BOOST_TEST(key[1] == 0x01234567u);
  // Same (index, step, block), different purpose: different streams.
  BOOST_TEST((philox4x32_10(philox_counter(Purpose::kInit, 0, 0, 1, 0), key) !=
              philox4x32_10(philox_counter(Purpose::kTest, 0, 0, 1, 0), key)));
}

BOOST_AUTO_TEST_CASE(uniform_conversions_hit_their_ranges_exactly) {
  BOOST_TEST(uniform01(0u) == 0.0f);
  BOOST_TEST(uniform01(0xffffffffu) == 1.0f - std::ldexp(1.0f, -24));
  BOOST_TEST(uniform01_open0(0u) == std::ldexp(1.0f, -24));
  BOOST_TEST(uniform01_open0(0xffffffffu) == 1.0f);
  // 2u - 1 is exact in float32 for every 24-bit u (the golden weights rely on it).
  for (uint32_t top : {0u, 1u, 0x7fffffu, 0x800000u, 0xffffffu}) {
    const float u = uniform01(top << 8);
    const double exact = 2.0 * static_cast<double>(top) / 16777216.0 - 1.0;
    BOOST_TEST(static_cast<double>(2.0f * u - 1.0f) == exact);
  }
}

BOOST_AUTO_TEST_CASE(golden_weights_follow_their_rules) {
  // Conv weight: within the fan_avg limit, not constant; GroupNorm weight around 1,
  // bias around 0, both within 1/8.
  const std::vector<int64_t> conv_shape{32, 3, 3, 3};
  const std::vector<float> w = testing::golden_tensor("conv_in.weight", conv_shape);
  const double limit = std::sqrt(3.0 / ((3 * 9 + 32 * 9) / 2.0));
  BOOST_TEST(w.size() == 32u * 3 * 3 * 3);
  std::set<float> distinct(w.begin(), w.end());
  BOOST_TEST(distinct.size() > w.size() / 2);
  for (float v : w) BOOST_TEST(std::fabs(v) <= limit * (1 + 1e-7));
  for (float v : testing::golden_tensor("norm_out.weight", {32})) BOOST_TEST(std::fabs(v - 1.0f) <= 0.125f);
  for (float v : testing::golden_tensor("norm_out.bias", {32})) BOOST_TEST(std::fabs(v) <= 0.125f);
  // Another name or seed draws another tensor.
  BOOST_TEST(testing::golden_tensor("conv_out.weight", conv_shape) != w);
  BOOST_TEST(testing::golden_tensor("conv_in.weight", conv_shape, 1) != w);
}
