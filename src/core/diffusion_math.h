// The elementwise formulas of the diffusion process, written once for the host
// (core/diffusion.cpp) and the CUDA kernels (cuda/diffusion.cu). Each takes one
// example's coefficients (gathered on the host from the float64 tables, diffusion.h)
// and evaluates in double from float inputs.
//
// On the device the _rn intrinsics keep nvcc from contracting a * b + c. The host C++
// is compiled with GCC's default for C++ (-ffp-contract=fast: it may fuse a * b + c),
// so the two backends agree to double rounding, not bit for bit; building
// diffusion.cpp with -ffp-contract=off would make them identical (and move the CPU's
// results by ~1e-16).
#pragma once

#include "core/host_device.h"

namespace ddpm {

enum class MeanType { kEps, kXstart, kXprev };   // what the model predicts
enum class VarType { kFixedLarge, kFixedSmall };  // σ²_t = β_t or β̃_t
enum class LossType { kMse, kKl };                // L_simple or the variational bound

namespace dm {  // double arithmetic that rounds alike on host and device

DDPM_HOST_DEVICE inline double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
DDPM_HOST_DEVICE inline double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
DDPM_HOST_DEVICE inline double sub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
DDPM_HOST_DEVICE inline double div(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
// a x + b y, each product rounded
DDPM_HOST_DEVICE inline double mul_add(double a, double x, double b, double y) { return add(mul(a, x), mul(b, y)); }

}  // namespace dm

// --- the forward process --------------------------------------------------------------

struct QSampleCoefs {
  double from_x0, from_noise;  // sqrt(ᾱ_t), sqrt(1 - ᾱ_t)
};

// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε (eq. 4)
DDPM_HOST_DEVICE inline double q_sample_element(const QSampleCoefs& c, double x0, double noise) {
  return dm::mul_add(c.from_x0, x0, c.from_noise, noise);
}

// --- the reverse process --------------------------------------------------------------

// How one example turns the model output into x̂_0 and μ_θ at timestep t (the
// reference's p_mean_variance).
struct ReverseCoefs {
  double xstart_from_xt = 0, xstart_from_out = 0;  // x̂_0 = a x_t + b out
  double mean_from_xstart = 0, mean_from_xt = 0;   // μ_θ = coef1 x̂_0 + coef2 x_t (eq. 7)
  bool mean_is_output = false;                     // xprev: μ_θ = out
};

struct ReverseElement {
  double xstart;      // x̂_0, clipped when asked
  double mean;        // μ_θ
  double dmean_dout;  // ∂μ_θ / ∂out, for the loss gradients
};

DDPM_HOST_DEVICE inline ReverseElement reverse_element(const ReverseCoefs& c, double out, double x_t, bool clip) {
  double xstart = dm::mul_add(c.xstart_from_xt, x_t, c.xstart_from_out, out);
  double dxstart_dout = c.xstart_from_out;
  if (clip && (xstart < -1.0 || xstart > 1.0)) {  // tf.clip_by_value: no gradient outside
    xstart = xstart < -1.0 ? -1.0 : 1.0;
    dxstart_dout = 0.0;
  }
  if (c.mean_is_output) return {xstart, out, 1.0};
  return {xstart, dm::mul_add(c.mean_from_xstart, xstart, c.mean_from_xt, x_t), dm::mul(c.mean_from_xstart, dxstart_dout)};
}

struct PSampleCoefs {
  ReverseCoefs reverse;
  double sigma;  // σ_t = exp(log σ²_t / 2), 0 at t = 0 (Algorithm 2, line 3)
};

// Algorithm 2, one element: x_{t-1} = μ_θ + σ_t z; *xstart receives x̂_0.
DDPM_HOST_DEVICE inline double p_sample_element(const PSampleCoefs& c, double out, double x_t, double noise, bool clip,
                                                double* xstart) {
  const ReverseElement r = reverse_element(c.reverse, out, x_t, clip);
  *xstart = r.xstart;
  return dm::add(r.mean, dm::mul(c.sigma, noise));
}

struct DdimCoefs {
  ReverseCoefs reverse;
  double sqrt_recip, sqrt_recipm1;      // ε̂ = (sqrt(1/ᾱ_t) x_t - x̂_0) / sqrt(1/ᾱ_t - 1)
  double from_xstart, from_eps, sigma;  // eq. 12
};

// DDIM (Song et al. 2021, eq. 12), one element: x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 -
// ᾱ_prev - σ²) ε̂ + σ z, with ε̂ re-derived from the (clipped) x̂_0. The noise is not
// used where σ = 0 (pass 0 when there is none).
DDPM_HOST_DEVICE inline double ddim_element(const DdimCoefs& k, double out, double x_t, double noise, bool clip,
                                            double* xstart) {
  const double xs = reverse_element(k.reverse, out, x_t, clip).xstart;
  const double eps = dm::div(dm::sub(dm::mul(k.sqrt_recip, x_t), xs), k.sqrt_recipm1);
  const double z = k.sigma != 0.0 ? noise : 0.0;
  *xstart = xs;
  return dm::add(dm::mul_add(k.from_xstart, xs, k.from_eps, eps), dm::mul(k.sigma, z));
}

// --- the L_simple loss ----------------------------------------------------------------

struct MseCoefs {
  double coef1, coef2;  // the x_{t-1} target μ̃_t = coef1 x_0 + coef2 x_t (eq. 7)
};

// What the model output is compared with: ε, x_0 or μ̃_t by mean type.
DDPM_HOST_DEVICE inline double mse_target(MeanType type, const MseCoefs& c, double x0, double x_t, double noise) {
  return type == MeanType::kEps      ? noise
         : type == MeanType::kXstart ? x0
                                     : dm::mul_add(c.coef1, x0, c.coef2, x_t);
}

// d/d out of grad_weight * mean over d elements of diff², diff = target - out
DDPM_HOST_DEVICE inline double mse_grad(double grad_weight, double diff, double inv_d) {
  return dm::mul(dm::mul(dm::mul(grad_weight, -2.0), diff), inv_d);
}

}  // namespace ddpm
