// The Gaussian diffusion process of Ho et al. 2020 (arXiv 2006.11239), as the reference
// code (diffusion_tf/diffusion_utils_2.py, GaussianDiffusion2) defines it:
//  - β schedules and every derived table in float64, kept as one DiffusionTable
//    (core/diffusion_table.h) that the diffusion kernels read;
//  - q(x_t | x_0) (eq. 4) and the posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7);
//  - p_θ(x_{t-1} | x_t) from a model output (ε, x_0 or x_{t-1}), with fixed variances;
//  - the full variational bound in bits/dim for NLL evaluation.
// The kernels (q_sample, the training losses and their gradient, the variational bound
// terms, one step of ancestral sampling and of DDIM) are core/diffusion_ops.h, on any
// backend's memory; host_diffusion_ops() runs them on host arrays.
//
// Every function takes host float arrays of N examples with `per_example` elements each
// and a per-example timestep array t[N] (0-based: t = 0 is the first diffusion step, the
// paper's t = 1), and evaluates in double from the float inputs.
// Random numbers are never drawn here: callers pass noise from the counter-based RNG.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/diffusion_table.h"

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
  // The table points into this object's arrays: not copied.
  Diffusion(const Diffusion&) = delete;
  Diffusion& operator=(const Diffusion&) = delete;

  int num_timesteps() const { return table_.num_timesteps; }
  MeanType mean_type() const { return table_.mean_type; }
  VarType var_type() const { return table_.var_type; }
  LossType loss_type() const { return table_.loss_type; }
  // What the diffusion kernels (core/diffusion_ops.h) read; valid while this lives.
  const DiffusionTable& table() const { return table_; }

  // --- the forward process --------------------------------------------------------
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

  // --- the variational bound ------------------------------------------------------
  // The full bound per image (reference calc_bpd_loop): for t = T-1 down to 0, draws
  // x_t ~ q(x_t | x_0) with noise(t), runs the model and records L_t and the x̂_0 error
  // (the host kernels' q_sample, vb_terms_bpd and prior_bpd).
  BpdResult calc_bpd_loop(const float* x0, int N, int64_t per_example, const DenoiseFn& model,
                          const NoiseFn& noise, bool clip = true) const;

 private:
  // The arrays table_ points into, one per table (moved in: their buffers never move).
  std::vector<std::vector<double>> arrays_;
  DiffusionTable table_;
};

}  // namespace ddpm
