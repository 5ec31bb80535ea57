// Counter-based randomness: Philox4x32-10 (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC'11). Every random number in ddpm is a pure function of
// (seed, purpose, step, global example index, element), so the noise, timesteps,
// dropout masks and flips do not depend on the number of ranks, and a resumed run
// needs no hidden generator state.
//
// The same header serves the CUDA kernels (DDPM_HOST_DEVICE), so both backends draw
// from one definition.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace ddpm {

// Fixed-size words usable on host and device (std::array is host-only under nvcc).
template <int N>
struct u32xN {
  uint32_t w[N];
  DDPM_HOST_DEVICE uint32_t& operator[](int i) { return w[i]; }
  DDPM_HOST_DEVICE const uint32_t& operator[](int i) const { return w[i]; }
  friend bool operator==(const u32xN& a, const u32xN& b) {
    for (int i = 0; i < N; ++i)
      if (a.w[i] != b.w[i]) return false;
    return true;
  }
  friend bool operator!=(const u32xN& a, const u32xN& b) { return !(a == b); }
};
using u32x4 = u32xN<4>;
using u32x2 = u32xN<2>;

// What a stream of random numbers is for; part of every counter so streams never
// overlap.
enum class Purpose : uint32_t {
  kInit = 1,       // parameter initialisation (index: fnv1a32 of the parameter name)
  kDropout = 2,    // dropout masks (sub-id: layer index)
  kTimestep = 3,   // t ~ U{0..T-1} per example
  kNoise = 4,      // eps ~ N(0, I) per example
  kFlip = 5,       // random horizontal flips per example
  kPermute = 6,    // data permutation per epoch
  kSample = 7,     // sampler noise
  kTest = 8,       // test fixtures (golden weights)
  kBound = 9,      // q-sample noise of the variational bound (ddpm_eval bpd; index: image)
};

DDPM_HOST_DEVICE inline uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Philox4x32's multipliers and key increments (also used by core/cpu/philox_x16.h).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// The Philox4x32 bijection with 10 rounds.
DDPM_HOST_DEVICE inline u32x4 philox4x32_10(u32x4 ctr, u32x2 key) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(kPhiloxM0, ctr[0], &hi0);
    uint32_t lo1 = mulhilo32(kPhiloxM1, ctr[2], &hi1);
    ctr = u32x4{{hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0}};
    key[0] += kPhiloxW0;
    key[1] += kPhiloxW1;
  }
  return ctr;
}

DDPM_HOST_DEVICE inline u32x2 philox_key(uint64_t seed) {
  return u32x2{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
}

// Counter layout: {block, index, step, purpose << 24 | sub_id}. `index` is the global
// example index (or another caller-defined stream index), `block` counts groups of
// four outputs within that stream.
DDPM_HOST_DEVICE inline u32x4 philox_counter(Purpose purpose, uint32_t sub_id, uint32_t step, uint32_t index,
                            uint32_t block) {
  return u32x4{{block, index, step, (static_cast<uint32_t>(purpose) << 24) | (sub_id & 0xFFFFFFu)}};
}

// Uniform in [0, 1) with 24 random bits: exact in float32.
DDPM_HOST_DEVICE inline float uniform01(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

// Uniform in (0, 1]: safe for log().
DDPM_HOST_DEVICE inline float uniform01_open0(uint32_t bits) {
  return static_cast<float>((bits >> 8) + 1) * (1.0f / 16777216.0f);
}

// Two standard normals from two 32-bit draws (Box-Muller), computed in double so the
// result does not depend on the float libm.
DDPM_HOST_DEVICE inline void box_muller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const double u1 = (static_cast<double>(a >> 8) + 1.0) * (1.0 / 16777216.0);
  const double u2 = static_cast<double>(b >> 8) * (1.0 / 16777216.0);
  const double r = sqrt(-2.0 * log(u1));
  const double th = 6.283185307179586 * u2;
  double sin_th, cos_th;
#if defined(__CUDA_ARCH__)
  sincos(th, &sin_th, &cos_th);
#else
  sin_th = std::sin(th);
  cos_th = std::cos(th);
#endif
  *z0 = static_cast<float>(r * cos_th);
  *z1 = static_cast<float>(r * sin_th);
}

// Fills out[0..n) with N(0,1) draws of stream (purpose, sub_id, step, index).
void normal_fill(float* out, int64_t n, uint64_t seed, Purpose purpose, uint32_t sub_id,
                 uint32_t step, uint32_t index);

// FNV-1a 32-bit hash: turns a parameter name into a stream id.
inline uint32_t fnv1a32(const char* s) {
  uint32_t h = 2166136261u;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 16777619u;
  return h;
}

}  // namespace ddpm
