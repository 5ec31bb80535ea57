// The diffusion kernels: what the diffusion process computes on backend memory, apart
// from the network. A backend hands out its implementation through Ops::diffusion();
// the CPU's (core/cpu/diffusion.cpp) works on host memory and is also what
// core/diffusion.h's host functions run, the CUDA one is core/cuda/diffusion.cu. Both
// evaluate the per-element formulas of core/diffusion_math.h from the coefficients of
// core/diffusion_table.h, so there is one formula for both.
//
// Every method takes the process's table first (core/diffusion_table.h: the float64
// tables, the mean, variance and loss types), then the usual order: outputs, inputs,
// sizes. x, noise, model outputs and gradients are [N, per_example] backend memory;
// t [N], losses and bounds [N] stay on the host. t is 0-based: t = 0 is the paper's
// t = 1. Random numbers come from the counter-based RNG (core/rng.h), never from state.
//
// Adding a kernel: declare it here, give it a body in cpu/diffusion.cpp and in
// cuda/diffusion.cu, and a case in the op registry (tests/unit/op_registry_diffusion.cpp;
// test_cpu_kernels fails for a method declared here without one).
#pragma once

#include <cstdint>

#include "core/diffusion_table.h"
#include "core/rng.h"

namespace ddpm {

class DiffusionOps {
 public:
  virtual ~DiffusionOps() = default;

  // --- the process's inputs -----------------------------------------------------------
  // out [N, per_example]: N(0, I) draws of stream (seed, purpose, sub_id, step), example
  // n using stream index first_index + n (the same numbers on every backend).
  virtual void fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose, uint32_t sub_id,
                           uint32_t step, uint32_t first_index) = 0;
  // out [n] = pixels[n] / 127.5 - 1 in float (uint8 images, host, to the model's [-1, 1])
  virtual void images_to_model(float* out, const uint8_t* pixels_host, int64_t n) = 0;

  // --- the forward process --------------------------------------------------------------
  // x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) noise (eq. 4). x_t may alias x0 or noise.
  virtual void q_sample(const DiffusionTable& tb, float* x_t, const float* x0, const float* noise, const int* t,
                        int N, int64_t per_example) = 0;

  // --- losses and the variational bound --------------------------------------------------
  // The configured training loss per example, losses[N], with x_t = q_sample(x0, noise, t).
  // mse: mean over elements of (target - out)², target ε / x_0 / μ̃_t by mean type;
  // kl: vb_terms_bpd with an unclipped x̂_0 (as the reference's training_losses; noise
  // is not read and may be null). grad (nullable) receives grad_weight * d losses[n] /
  // d model_out; the batch loss is the mean over the batch, so pass grad_weight = 1 /
  // (global batch size).
  virtual void training_losses(const DiffusionTable& tb, double* losses, float* grad, const float* model_out,
                               const float* x0, const float* x_t, const float* noise, const int* t, int N,
                               int64_t per_example, double grad_weight) = 0;
  // The variational bound term of each example in bits/dim (reference _vb_terms_bpd):
  // L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) for t >= 1, and the
  // discretised Gaussian decoder NLL -log p_θ(x_0 | x_1) at t = 0, with x̂_0 clipped to
  // [-1, 1] when asked. Nullable: grad (as in training_losses), pred_xstart (x̂_0) and
  // xstart_mse [N] (mean of (x̂_0 - x_0)², calc_bpd_loop's mse).
  virtual void vb_terms_bpd(const DiffusionTable& tb, double* terms, float* grad, float* pred_xstart,
                            double* xstart_mse, const float* model_out, const float* x0, const float* x_t,
                            const int* t, int N, int64_t per_example, bool clip, double grad_weight) = 0;
  // prior [N] = L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim per example.
  virtual void prior_bpd(const DiffusionTable& tb, double* prior, const float* x0, int N, int64_t per_example) = 0;

  // --- the reverse process --------------------------------------------------------------
  // Algorithm 2, one step: x_{t-1} = μ_θ + σ_t z, no noise where t = 0, with x̂_0 clipped
  // to [-1, 1] as in the reference's p_sample; pred_xstart (nullable) receives it for
  // progressive sampling. x_prev may alias x_t.
  virtual void p_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                        const float* x_t, const float* noise, const int* t, int N, int64_t per_example) = 0;
  // DDIM (Song et al. 2021, eq. 12) from timestep t to t_prev (-1: to x_0), per example:
  //   x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε̂ + σ z,
  //   σ = η sqrt((1 - ᾱ_prev) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_prev),
  // with x̂_0 clipped and ε̂ re-derived from the clipped x̂_0 (as guided-diffusion). No
  // noise on the step to x_0 (t_prev = -1); noise may be null where no step adds any
  // (eta = 0, or every t_prev = -1).
  virtual void ddim_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                           const float* x_t, const float* noise, const int* t, const int* t_prev, int N,
                           int64_t per_example, double eta) = 0;
};

// The kernels on host memory (cpu/diffusion.cpp): the CPU backend's, and what the host
// functions of core/diffusion.h and the CUDA backend's host fallbacks run.
DiffusionOps& host_diffusion_ops();

}  // namespace ddpm
