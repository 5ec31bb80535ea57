// What every diffusion kernel reads: the process's float64 tables and its choices, in
// one plain struct (core/diffusion.h builds and owns it; core/diffusion_ops.h's kernels
// take it), and the per-example coefficients gathered from it for the elementwise
// formulas of core/diffusion_math.h.
//
// The struct is trivially copyable, so a kernel may take it by value; its arrays are
// host memory today (both backends gather coefficients on the host, in float64, and a
// CUDA kernel reads only the gathered structs), and a backend that wants the tables on
// the device copies the arrays once and passes a copy of the struct pointing at them.
#pragma once

#include <type_traits>
#include <vector>

#include "core/diffusion_math.h"

namespace ddpm {

// Indexed by t in [0, T), float64, names as the reference (diffusion_utils_2.py).
struct DiffusionTable {
  int num_timesteps = 0;
  MeanType mean_type = MeanType::kEps;
  VarType var_type = VarType::kFixedLarge;
  LossType loss_type = LossType::kMse;

  const double* betas = nullptr;
  const double* alphas_cumprod = nullptr;       // ᾱ_t = ∏_{s<=t} (1 - β_s)
  const double* alphas_cumprod_prev = nullptr;  // ᾱ_{t-1}, with 1 at t = 0
  const double* sqrt_alphas_cumprod = nullptr;
  const double* sqrt_one_minus_alphas_cumprod = nullptr;
  const double* log_one_minus_alphas_cumprod = nullptr;
  const double* sqrt_recip_alphas_cumprod = nullptr;       // sqrt(1 / ᾱ_t)
  const double* sqrt_recipm1_alphas_cumprod = nullptr;     // sqrt(1 / ᾱ_t - 1)
  const double* posterior_variance = nullptr;              // β̃_t (eq. 7), 0 at t = 0
  const double* posterior_log_variance_clipped = nullptr;  // log β̃_t with β̃_0 replaced by β̃_1
  const double* posterior_mean_coef1 = nullptr;            // μ̃_t = coef1 x_0 + coef2 x_t (eq. 7)
  const double* posterior_mean_coef2 = nullptr;
  // σ²_t of p_θ(x_{t-1} | x_t) for var_type and its log: fixedlarge uses β_t with
  // log(β̃_1) at t = 0 (the reference's better decoder likelihood), fixedsmall uses β̃_t
  // with the clipped log.
  const double* model_variance = nullptr;
  const double* model_log_variance = nullptr;
};
static_assert(std::is_trivially_copyable_v<DiffusionTable>, "kernels take the table by value");

// Throws unless every t[n] is in [0, T).
void check_timesteps(const DiffusionTable& tb, const int* t, int N);

// Per-example coefficients of the elementwise formulas at timestep t. Those that
// compute are out of line (diffusion_table.cpp), compiled once with the core's flags,
// so that the CPU and CUDA kernels start from the same bits; those that only read the
// table are inline, since the CPU's q_sample and loss take them per element.
inline QSampleCoefs q_sample_coefs(const DiffusionTable& tb, int t) {
  return {tb.sqrt_alphas_cumprod[t], tb.sqrt_one_minus_alphas_cumprod[t]};
}
inline MseCoefs mse_coefs(const DiffusionTable& tb, int t) {
  return {tb.posterior_mean_coef1[t], tb.posterior_mean_coef2[t]};
}
ReverseCoefs reverse_coefs(const DiffusionTable& tb, int t);
PSampleCoefs p_sample_coefs(const DiffusionTable& tb, int t);
// From t to t_prev (-1: to x_0) with η = eta; checks -1 <= t_prev < t.
DdimCoefs ddim_coefs(const DiffusionTable& tb, int t, int t_prev, double eta);
// Every example's DDIM step, t[n] to t_prev[n], checking t and η in [0, 1], and that
// noise is given (has_noise) wherever a step adds some: not on a step to x_0, whatever η.
std::vector<DdimCoefs> ddim_step_coefs(const DiffusionTable& tb, const int* t, const int* t_prev, int N, double eta,
                                       bool has_noise);

}  // namespace ddpm
