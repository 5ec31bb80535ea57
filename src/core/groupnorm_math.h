// GroupNorm's per-group and per-channel algebra, written once for the CPU
// (cpu/groupnorm.cpp) and CUDA (cuda/groupnorm.cu) halves. Both reduce the data to
// per-(n, c) sums in double with a fixed order, then use these functions per group and
// channel, then make one elementwise pass:
//
//   forward:  y = x scale + shift,  scale = rstd w,  shift = b - mean rstd w
//   backward: with x̂ = (x - mean) rstd, dy the gradient reaching y = x̂ w + b (through
//             the swish when fused), m1 = mean_g(dy w), m2 = mean_g(dy w x̂):
//             din = rstd (dy w - m1 - x̂ m2), which per (n, c) is the affine form
//             din = k_dy dy + k_x x + k_0 (one pass over the data after the sums).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace ddpm {

constexpr double kGroupNormEps = 1e-6;

// Sums over the channels [c0, c0 + Cg) of one group of per-channel totals a[c] and b[c]
// (stride elements apart), each weighted by w[c] when w is not null.
struct GroupSums {
  double a, b;
};
DDPM_HOST_DEVICE inline GroupSums group_sums(const double* a, const double* b, int stride, int c0, int Cg,
                                             const float* w) {
  GroupSums s{0.0, 0.0};
  for (int c = c0; c < c0 + Cg; ++c) {
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    s.a += a[static_cast<int64_t>(c) * stride] * wc;
    s.b += b[static_cast<int64_t>(c) * stride] * wc;
  }
  return s;
}

// mean and 1 / sqrt(var + eps) of a group from its sum and sum of squares over count values.
struct GroupMoments {
  double mean, rstd;
};
DDPM_HOST_DEVICE inline GroupMoments group_moments(double sum, double sum_sq, double count) {
  const double mu = sum / count;
  double var = sum_sq / count - mu * mu;
  var = var < 0.0 ? 0.0 : var;  // round-off of a constant group
  return {mu, 1.0 / sqrt(var + kGroupNormEps)};
}

// Forward: y = x scale + shift for channel c (weight w, bias b) of a group.
struct ChannelAffine {
  float scale, shift;
};
DDPM_HOST_DEVICE inline ChannelAffine forward_affine(const GroupMoments& g, float w, float b) {
  return {static_cast<float>(g.rstd * w), static_cast<float>(b - g.mean * g.rstd * w)};
}

// Backward recomputes x̂ and y from x and the saved float mean and rstd:
// x̂ = x rs + nmr, y = x̂ w + b (for the sums) or y = x scale + shift (for din).
struct SavedAffine {
  float rs, nmr, scale, shift;
};
DDPM_HOST_DEVICE inline SavedAffine saved_affine(float mean, float rstd, float w, float b) {
  const float nmr = -mean * rstd;
  return {rstd, nmr, rstd * w, nmr * w + b};
}

// Backward: din = k_dy dy + k_x x + k_0 for channel c (weight w) of a group with saved
// mean, rstd and gradient means m1, m2.
struct InputGradCoefs {
  float k_dy, k_x, k_0;
};
DDPM_HOST_DEVICE inline InputGradCoefs input_grad_coefs(double mean, double rstd, double m1, double m2, float w) {
  return {static_cast<float>(rstd * w), static_cast<float>(-rstd * rstd * m2),
          static_cast<float>(rstd * (rstd * m2 * mean - m1))};
}

}  // namespace ddpm
