// The Gaussian diffusion process of Ho et al. 2020 (arXiv 2006.11239), as the reference
// code (diffusion_tf/diffusion_utils_2.py, GaussianDiffusion2) defines it:
//  - β schedules and every derived table in float64;
//  - q(x_t | x_0) (eq. 4) and the posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7);
//  - p_θ(x_{t-1} | x_t) from a model output (ε, x_0 or x_{t-1}), with fixed variances;
//  - the training losses (L_simple, eq. 14, or the variational bound terms, eq. 5) and
//    their gradient with respect to the model output;
//  - one step of ancestral sampling (Algorithm 2) and of DDIM (Song et al. 2021, eq. 12);
//  - the full variational bound in bits/dim for NLL evaluation.
//
// Every function takes host float arrays of N examples with `per_example` elements each
// and a per-example timestep array t[N] (0-based: t = 0 is the first diffusion step, the
// paper's t = 1). Each is built the same way so a CUDA kernel can mirror it: per-example
// coefficients gathered from the float64 tables, then an elementwise formula evaluated in
// double from the float inputs (the golden tests compare against numpy float64 at 1e-6;
// float arithmetic would lose that in the KL's (μ̃ - μ_θ)² cancellation).
// Random numbers are never drawn here: callers pass noise from the counter-based RNG.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/diffusion_math.h"

namespace ddpm {

// β_0..β_{T-1} in float64, as the reference's get_beta_schedule (linear, quad, const,
// jsd, warmup10, warmup50; np.linspace reproduced exactly) and Nichol & Dhariwal 2021's
// cosine schedule (s = 0.008, β clipped at 0.999; ignores beta_start/beta_end).
std::vector<double> make_beta_schedule(const std::string& name, double beta_start, double beta_end,
                                       int num_timesteps);

// The timesteps DDIM visits, ascending: guided-diffusion's "ddimK" spacing, i.e.
// range(0, T, s) for the smallest integer stride s that gives exactly K steps
// (K = 50 of T = 1000: 0, 20, ..., 980). InputError if no stride gives K steps.
std::vector<int> ddim_timesteps(int num_timesteps, int num_steps);

// Every table the process uses, indexed by t in [0, T), float64 (names as the reference).
struct DiffusionTables {
  std::vector<double> betas;
  std::vector<double> alphas_cumprod;       // ᾱ_t = ∏_{s<=t} (1 - β_s)
  std::vector<double> alphas_cumprod_prev;  // ᾱ_{t-1}, with 1 at t = 0
  std::vector<double> sqrt_alphas_cumprod;
  std::vector<double> sqrt_one_minus_alphas_cumprod;
  std::vector<double> log_one_minus_alphas_cumprod;
  std::vector<double> sqrt_recip_alphas_cumprod;    // sqrt(1 / ᾱ_t)
  std::vector<double> sqrt_recipm1_alphas_cumprod;  // sqrt(1 / ᾱ_t - 1)
  std::vector<double> posterior_variance;           // β̃_t (eq. 7), 0 at t = 0
  std::vector<double> posterior_log_variance_clipped;  // log β̃_t with β̃_0 replaced by β̃_1
  std::vector<double> posterior_mean_coef1;         // μ̃_t = coef1 x_0 + coef2 x_t (eq. 7)
  std::vector<double> posterior_mean_coef2;
  // σ²_t of p_θ(x_{t-1} | x_t) for the configured VarType and its log: fixedlarge uses
  // β_t with log(β̃_1) at t = 0 (the reference's better decoder likelihood), fixedsmall
  // uses β̃_t with the clipped log.
  std::vector<double> model_variance;
  std::vector<double> model_log_variance;
};

// Per-example coefficients of the elementwise formulas (core/diffusion_math.h) at
// timestep t, gathered from the float64 tables: the CPU formulas and the CUDA kernels
// both start from these.
ReverseCoefs reverse_coefs(const DiffusionTables& tb, MeanType type, int t);
QSampleCoefs q_sample_coefs(const DiffusionTables& tb, int t);
PSampleCoefs p_sample_coefs(const DiffusionTables& tb, MeanType type, int t);
MseCoefs mse_coefs(const DiffusionTables& tb, int t);
// From t to t_prev (-1: to x_0) with η = eta; checks -1 <= t_prev < t.
DdimCoefs ddim_coefs(const DiffusionTables& tb, MeanType type, int t, int t_prev, double eta);

// The terms of the variational bound of a batch, in bits/dim (calc_bpd_loop).
struct BpdResult {
  std::vector<double> total_bpd;  // [N] sum over t of L_t plus the prior term L_T
  std::vector<double> terms_bpd;  // [N, T] L_{t-1} for t >= 1, the decoder NLL L_0 at t = 0
  std::vector<double> prior_bpd;  // [N] KL(q(x_T | x_0) || N(0, I))
  std::vector<double> mse;        // [N, T] mean over elements of (x̂_0 - x_0)²
};

class Diffusion {
 public:
  // The model: fills out[N, per_example] from x_t[N, per_example] at timesteps t[N].
  using DenoiseFn = std::function<void(float* out, const float* x_t, const int* t, int N)>;
  // Fills noise[N, per_example] with N(0, I) draws for the q_sample at timestep t.
  using NoiseFn = std::function<void(float* noise, int t, int N)>;

  // Throws InputError for configurations the process cannot represent (T < 2).
  explicit Diffusion(const DiffusionConfig& config);

  int num_timesteps() const { return static_cast<int>(tables_.betas.size()); }
  MeanType mean_type() const { return mean_type_; }
  VarType var_type() const { return var_type_; }
  LossType loss_type() const { return loss_type_; }
  const DiffusionTables& tables() const { return tables_; }
  // Throws unless every t[n] is in [0, T).
  void check_timesteps(const int* t, int N) const;

  // --- the forward process --------------------------------------------------------
  // x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) noise (eq. 4). x_t may alias x0 or noise.
  void q_sample(float* x_t, const float* x0, const float* noise, const int* t, int N,
                int64_t per_example) const;
  // Mean sqrt(ᾱ_t) x_0, and per example the variance 1 - ᾱ_t and its log (nullable).
  void q_mean_variance(float* mean, double* variance, double* log_variance, const float* x0, const int* t, int N,
                       int64_t per_example) const;
  // q(x_{t-1} | x_t, x_0): mean μ̃_t, per-example β̃_t and clipped log β̃_t (nullable).
  void q_posterior(float* mean, double* variance, double* log_variance_clipped, const float* x0,
                   const float* x_t, const int* t, int N, int64_t per_example) const;

  // --- the reverse process --------------------------------------------------------
  // x̂_0 from the model output (eq. 15 for ε), optionally clipped to [-1, 1].
  void predict_xstart(float* pred_xstart, const float* model_out, const float* x_t, const int* t, int N,
                      int64_t per_example, bool clip) const;
  // p_θ(x_{t-1} | x_t): mean μ_θ (the posterior mean at x̂_0 for ε / x_0, the output
  // itself for x_{t-1}), x̂_0 (nullable) and per-example σ²_t, log σ²_t (nullable).
  void p_mean_variance(float* mean, float* pred_xstart, double* variance, double* log_variance,
                       const float* model_out, const float* x_t, const int* t, int N, int64_t per_example,
                       bool clip) const;
  // Algorithm 2, one step: x_{t-1} = μ_θ + σ_t z, no noise where t = 0. x̂_0 is clipped
  // as in the reference's p_sample; pred_xstart (nullable) receives it for progressive
  // sampling. x_prev may alias x_t.
  void p_sample(float* x_prev, float* pred_xstart, const float* model_out, const float* x_t, const float* noise,
                const int* t, int N, int64_t per_example, bool clip = true) const;
  // DDIM (Song et al. 2021, eq. 12) from timestep t to t_prev (-1: to x_0), per example:
  //   x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε̂ + σ z,
  //   σ = η sqrt((1 - ᾱ_prev) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_prev),
  // with x̂_0 clipped and ε̂ re-derived from the clipped x̂_0 (as guided-diffusion). No
  // noise on the last step (t_prev = -1); noise may be null when eta = 0.
  void ddim_sample(float* x_prev, float* pred_xstart, const float* model_out, const float* x_t, const float* noise,
                   const int* t, const int* t_prev, int N, int64_t per_example, double eta,
                   bool clip = true) const;

  // --- losses ---------------------------------------------------------------------
  // The configured training loss per example, losses[N], with x_t = q_sample(x0, noise, t).
  // mse: mean over elements of (target - out)², target ε / x_0 / μ̃_t by mean type;
  // kl: vb_terms_bpd with an unclipped x̂_0 (as the reference's training_losses).
  // grad (nullable) receives grad_weight * d losses[n] / d model_out; the batch loss is
  // the mean over the batch, so pass grad_weight = 1 / (global batch size).
  void training_losses(double* losses, float* grad, const float* model_out, const float* x0, const float* x_t,
                       const float* noise, const int* t, int N, int64_t per_example, double grad_weight) const;
  // The variational bound term of each example in bits/dim (reference _vb_terms_bpd):
  // L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) for t >= 1, and the
  // discretised Gaussian decoder NLL -log p_θ(x_0 | x_1) at t = 0. pred_xstart and
  // grad are nullable; grad as in training_losses.
  void vb_terms_bpd(double* terms, float* grad, float* pred_xstart, const float* model_out, const float* x0,
                    const float* x_t, const int* t, int N, int64_t per_example, bool clip,
                    double grad_weight) const;
  // L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim per example.
  void prior_bpd(double* prior, const float* x0, int N, int64_t per_example) const;
  // The full bound per image (reference calc_bpd_loop): for t = T-1 down to 0, draws
  // x_t ~ q(x_t | x_0) with noise(t), runs the model and records L_t and the x̂_0 error.
  BpdResult calc_bpd_loop(const float* x0, int N, int64_t per_example, const DenoiseFn& model,
                          const NoiseFn& noise, bool clip = true) const;

 private:
  DiffusionTables tables_;
  MeanType mean_type_;
  VarType var_type_;
  LossType loss_type_;
};

// Standard-normal CDF approximation used by the reference's decoder (utils.py):
// 0.5 (1 + tanh(sqrt(2/π) (x + 0.044715 x³))), evaluated as the equal logistic
// 1 / (1 + exp(-2 sqrt(2/π) (x + 0.044715 x³))), which keeps its precision in the tails.
double approx_standard_normal_cdf(double x);

}  // namespace ddpm
