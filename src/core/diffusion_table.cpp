// Per-example coefficients gathered from the float64 tables (see diffusion_table.h).
// Equation numbers are Ho et al. 2020.
#include "core/diffusion_table.h"

#include <algorithm>
#include <cmath>

#include "core/common.h"

namespace ddpm {

void check_timesteps(const DiffusionTable& tb, const int* t, int N) {
  for (int n = 0; n < N; ++n) {
    DDPM_CHECK(t[n] >= 0 && t[n] < tb.num_timesteps, "timestep ", t[n], " of example ", n, " outside [0, ",
               tb.num_timesteps, ")");
  }
}

ReverseCoefs reverse_coefs(const DiffusionTable& tb, int t) {
  ReverseCoefs c;
  c.mean_from_xstart = tb.posterior_mean_coef1[t];
  c.mean_from_xt = tb.posterior_mean_coef2[t];
  switch (tb.mean_type) {
    case MeanType::kEps:  // x̂_0 = sqrt(1/ᾱ_t) x_t - sqrt(1/ᾱ_t - 1) ε (eq. 15)
      c.xstart_from_xt = tb.sqrt_recip_alphas_cumprod[t];
      c.xstart_from_out = -tb.sqrt_recipm1_alphas_cumprod[t];
      break;
    case MeanType::kXstart:
      c.xstart_from_out = 1.0;
      break;
    case MeanType::kXprev:  // invert eq. 7: x̂_0 = (x_{t-1} - coef2 x_t) / coef1
      c.xstart_from_out = 1.0 / tb.posterior_mean_coef1[t];
      c.xstart_from_xt = -tb.posterior_mean_coef2[t] / tb.posterior_mean_coef1[t];
      c.mean_is_output = true;
      break;
  }
  return c;
}

PSampleCoefs p_sample_coefs(const DiffusionTable& tb, int t) {
  return {reverse_coefs(tb, t), t == 0 ? 0.0 : std::exp(0.5 * tb.model_log_variance[t])};
}

DdimCoefs ddim_coefs(const DiffusionTable& tb, int t, int t_prev, double eta) {
  DDPM_CHECK(t_prev >= -1 && t_prev < t, "DDIM step from ", t, " to ", t_prev);
  const double ab = tb.alphas_cumprod[t];
  const double ab_prev = t_prev >= 0 ? tb.alphas_cumprod[t_prev] : 1.0;
  const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
  DdimCoefs c;
  c.reverse = reverse_coefs(tb, t);
  c.sqrt_recip = tb.sqrt_recip_alphas_cumprod[t];
  c.sqrt_recipm1 = tb.sqrt_recipm1_alphas_cumprod[t];
  c.from_xstart = std::sqrt(ab_prev);
  // 1 - ᾱ_prev - σ² >= 0 for η <= 1; the max only absorbs round-off at η = 1
  c.from_eps = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
  c.sigma = t_prev >= 0 ? sigma : 0.0;  // no noise on the step to x_0
  return c;
}

std::vector<DdimCoefs> ddim_step_coefs(const DiffusionTable& tb, const int* t, const int* t_prev, int N, double eta,
                                       bool has_noise) {
  check_timesteps(tb, t, N);
  DDPM_CHECK(eta >= 0.0 && eta <= 1.0, "DDIM eta ", eta, " outside [0, 1]");
  std::vector<DdimCoefs> c(N);
  for (int n = 0; n < N; ++n) {
    c[n] = ddim_coefs(tb, t[n], t_prev[n], eta);
    DDPM_CHECK(has_noise || c[n].sigma == 0.0, "the DDIM step from ", t[n], " to ", t_prev[n], " with eta ", eta,
               " needs noise");
  }
  return c;
}

}  // namespace ddpm
