// The diffusion kernels on host memory (core/diffusion_ops.h): the CPU backend's, and
// what core/diffusion.h's host functions and the CUDA backend's host fallbacks run.
// Equation numbers are Ho et al. 2020.
//
// Layout of every kernel: gather per-example coefficients from the float64 table (one
// small struct per example, core/diffusion_table.h), then run an elementwise formula
// over [N, per_example] in double (core/diffusion_math.h, which cuda/diffusion.cu runs
// too). Double, not float: the golden tests compare against numpy float64 at 1e-6, and
// float arithmetic would lose that in the KL's (μ̃ - μ_θ)² cancellation.
#include <cmath>
#include <vector>

#include "core/common.h"
#include "core/cpu/cpu_ops.h"
#include "core/diffusion_ops.h"
#include "core/example_loops.h"

namespace ddpm {
namespace {

constexpr double kLn2 = 0.69314718055994530942;
constexpr double kSqrt2OverPi = 0.79788456080286535588;

// --- host-only formulas of the variational bound ----------------------------------------

// KL(N(m1, e^lv1) || N(m2, e^lv2)) of one element (reference normal_kl) and its
// derivative in m2. exp_lv1_minus_lv2 = e^(lv1 - lv2), inv_var2 = e^-lv2.
struct KlElement {
  double value, dmean2;
};
KlElement normal_kl(double mean1, double logvar1, double mean2, double logvar2, double exp_lv1_minus_lv2,
                    double inv_var2) {
  const double diff = mean1 - mean2;
  return {0.5 * (-1.0 + logvar2 - logvar1 + exp_lv1_minus_lv2 + diff * diff * inv_var2), -diff * inv_var2};
}

// The argument of the reference's tanh: z(u) = sqrt(2/π) (u + 0.044715 u³), odd in u.
double cdf_tanh_argument(double u) {
  return kSqrt2OverPi * (u + 0.044715 * u * u * u);
}

// Standard-normal CDF approximation used by the reference's decoder (utils.py):
// 0.5 (1 + tanh(sqrt(2/π) (x + 0.044715 x³))), evaluated as the equal logistic
// 1 / (1 + exp(-2 sqrt(2/π) (x + 0.044715 x³))), which keeps its precision in the lower
// tail where 1 + tanh z cancels.
double approx_standard_normal_cdf(double x) {
  return 1.0 / (1.0 + std::exp(-2.0 * cdf_tanh_argument(x)));
}

// d/du of approx_standard_normal_cdf: sech²(z) z'(u) / 2, with sech²(z) written as
// 4 σ(2z) σ(-2z) so it stays accurate (and 0, not NaN) far in the tails. Even in u.
double approx_standard_normal_pdf(double u) {
  const double e = std::exp(-2.0 * std::fabs(cdf_tanh_argument(u)));  // in (0, 1]: no overflow
  const double sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
  return 0.5 * sech2 * kSqrt2OverPi * (1.0 + 3.0 * 0.044715 * u * u);
}

// log p(x) of the discretised Gaussian decoder (eq. 13; reference
// discretized_gaussian_log_likelihood): the Gaussian mass of the bin [x - 1/255,
// x + 1/255], open-ended at the edges x = -1 and x = 1, each probability floored at
// 1e-12. dmean is ∂ log p / ∂mean; where the floor is active it is 0, as the gradient
// of tf.maximum(p, 1e-12) (which goes to p on ties).
// The reference subtracts CDF values near 1 (upper tail) in float32; here a bin above
// the mean is measured with upper-tail masses 1 - Φ(u) = Φ(-u) instead. The value is the
// same function, without the cancellation that makes the tails noisy (and a finite
// difference check of them meaningless).
struct LogProbElement {
  double value, dmean;
};
LogProbElement discretized_gaussian_log_prob(double x, double mean, double inv_stdv) {
  constexpr double kHalfBin = 1.0 / 255.0;
  constexpr double kFloor = 1e-12;
  const double centered = x - mean;
  const double plus_in = inv_stdv * (centered + kHalfBin);
  const double min_in = inv_stdv * (centered - kHalfBin);
  // ∂plus_in/∂mean = ∂min_in/∂mean = -inv_stdv; the pdf is even
  double p, dp_dmean;
  if (x < -0.999) {  // the lowest bin reaches -inf: Φ(plus_in)
    p = approx_standard_normal_cdf(plus_in);
    dp_dmean = -inv_stdv * approx_standard_normal_pdf(plus_in);
  } else if (x > 0.999) {  // the highest bin reaches +inf: 1 - Φ(min_in) = Φ(-min_in)
    p = approx_standard_normal_cdf(-min_in);
    dp_dmean = inv_stdv * approx_standard_normal_pdf(min_in);
  } else {
    p = centered > 0.0 ? approx_standard_normal_cdf(-min_in) - approx_standard_normal_cdf(-plus_in)
                       : approx_standard_normal_cdf(plus_in) - approx_standard_normal_cdf(min_in);
    dp_dmean = inv_stdv * (approx_standard_normal_pdf(min_in) - approx_standard_normal_pdf(plus_in));
  }
  if (!(p >= kFloor)) return {std::log(kFloor), 0.0};
  return {std::log(p), dp_dmean / p};
}

// One example of the variational bound (reference _vb_terms_bpd) and, when grad is
// set, its gradient. xstart_mse receives mean (x̂_0 - x_0)² (calc_bpd_loop's mse).
struct VbExample {
  ReverseCoefs reverse;
  double true_mean_from_x0, true_mean_from_xt;  // μ̃_t (eq. 7)
  double true_log_var, model_log_var;
  bool decoder;  // t = 0: the decoder NLL L_0 instead of a KL
};

double vb_example(const VbExample& e, float* grad, float* pred_xstart, double* xstart_mse, const float* model_out,
                  const float* x0, const float* x_t, int64_t per_example, bool clip, double grad_weight) {
  const double scale = 1.0 / (static_cast<double>(per_example) * kLn2);  // mean over elements, in bits
  const double exp_lv1_minus_lv2 = std::exp(e.true_log_var - e.model_log_var);
  const double inv_model_var = std::exp(-e.model_log_var);
  const double inv_stdv = std::exp(-0.5 * e.model_log_var);  // the decoder's exp(-log_scale)
  double sum = 0.0, sq_err = 0.0;
  for (int64_t i = 0; i < per_example; ++i) {
    const ReverseElement r = reverse_element(e.reverse, model_out[i], x_t[i], clip);
    double value, dmean;
    if (e.decoder) {
      const LogProbElement lp = discretized_gaussian_log_prob(x0[i], r.mean, inv_stdv);
      value = -lp.value;
      dmean = -lp.dmean;
    } else {
      const double true_mean = e.true_mean_from_x0 * x0[i] + e.true_mean_from_xt * x_t[i];
      const KlElement kl =
          normal_kl(true_mean, e.true_log_var, r.mean, e.model_log_var, exp_lv1_minus_lv2, inv_model_var);
      value = kl.value;
      dmean = kl.dmean2;
    }
    sum += value;
    if (grad) grad[i] = static_cast<float>(grad_weight * scale * dmean * r.dmean_dout);
    if (pred_xstart) pred_xstart[i] = static_cast<float>(r.xstart);
    const double err = r.xstart - x0[i];
    sq_err += err * err;
  }
  if (xstart_mse) *xstart_mse = sq_err / static_cast<double>(per_example);
  return sum / static_cast<double>(per_example) / kLn2;
}

class CpuDiffusionOps final : public DiffusionOps {
 public:
  void fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose, uint32_t sub_id,
                   uint32_t step, uint32_t first_index) override;
  void images_to_model(float* out, const uint8_t* pixels_host, int64_t n) override;
  void q_sample(const DiffusionTable& tb, float* x_t, const float* x0, const float* noise, const int* t, int N,
                int64_t per_example) override;
  void training_losses(const DiffusionTable& tb, double* losses, float* grad, const float* model_out,
                       const float* x0, const float* x_t, const float* noise, const int* t, int N,
                       int64_t per_example, double grad_weight) override;
  void vb_terms_bpd(const DiffusionTable& tb, double* terms, float* grad, float* pred_xstart, double* xstart_mse,
                    const float* model_out, const float* x0, const float* x_t, const int* t, int N,
                    int64_t per_example, bool clip, double grad_weight) override;
  void prior_bpd(const DiffusionTable& tb, double* prior, const float* x0, int N, int64_t per_example) override;
  void p_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                const float* x_t, const float* noise, const int* t, int N, int64_t per_example) override;
  void ddim_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                   const float* x_t, const float* noise, const int* t, const int* t_prev, int N,
                   int64_t per_example, double eta) override;
};

void CpuDiffusionOps::fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose,
                                  uint32_t sub_id, uint32_t step, uint32_t first_index) {
  for (int n = 0; n < N; ++n) {
    normal_fill(out + n * per_example, per_example, seed, purpose, sub_id, step, first_index + n);
  }
}

void CpuDiffusionOps::images_to_model(float* out, const uint8_t* pixels_host, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(pixels_host[i]) / 127.5f - 1.0f;
}

void CpuDiffusionOps::q_sample(const DiffusionTable& tb, float* x_t, const float* x0, const float* noise,
                               const int* t, int N, int64_t per_example) {
  check_timesteps(tb, t, N);
  // The coefficients are two table reads: taken per element, so a training step
  // allocates no per-example array.
  for_each_element(N, per_example, [&](int n, int64_t i) {
    x_t[i] = static_cast<float>(q_sample_element(q_sample_coefs(tb, t[n]), x0[i], noise[i]));
  });
}

void CpuDiffusionOps::training_losses(const DiffusionTable& tb, double* losses, float* grad, const float* model_out,
                                      const float* x0, const float* x_t, const float* noise, const int* t, int N,
                                      int64_t per_example, double grad_weight) {
  if (tb.loss_type == LossType::kKl) {  // unclipped x̂_0, as the reference's training_losses
    vb_terms_bpd(tb, losses, grad, nullptr, nullptr, model_out, x0, x_t, t, N, per_example, /*clip=*/false,
                 grad_weight);
    return;
  }
  check_timesteps(tb, t, N);
  // L_simple (eq. 14) and its x_0 / x_{t-1} analogues: mean of (target - out)²
  const double inv_d = 1.0 / static_cast<double>(per_example);
  for_each_example(N, [&](int n) {
    const MseCoefs c = mse_coefs(tb, t[n]);
    const int64_t base = static_cast<int64_t>(n) * per_example;
    double sum = 0.0;
    for (int64_t i = base; i < base + per_example; ++i) {
      const double diff = mse_target(tb.mean_type, c, x0[i], x_t[i], noise[i]) - model_out[i];
      sum += diff * diff;
      if (grad) grad[i] = static_cast<float>(mse_grad(grad_weight, diff, inv_d));
    }
    losses[n] = sum * inv_d;
  });
}

void CpuDiffusionOps::vb_terms_bpd(const DiffusionTable& tb, double* terms, float* grad, float* pred_xstart,
                                   double* xstart_mse, const float* model_out, const float* x0, const float* x_t,
                                   const int* t, int N, int64_t per_example, bool clip, double grad_weight) {
  check_timesteps(tb, t, N);
  // Each example's coefficients in its own iteration: no per-example array to allocate.
  for_each_example(N, [&](int n) {
    VbExample ex;
    ex.reverse = reverse_coefs(tb, t[n]);
    ex.true_mean_from_x0 = tb.posterior_mean_coef1[t[n]];
    ex.true_mean_from_xt = tb.posterior_mean_coef2[t[n]];
    ex.true_log_var = tb.posterior_log_variance_clipped[t[n]];
    ex.model_log_var = tb.model_log_variance[t[n]];
    ex.decoder = t[n] == 0;
    const int64_t off = static_cast<int64_t>(n) * per_example;
    terms[n] = vb_example(ex, grad ? grad + off : nullptr, pred_xstart ? pred_xstart + off : nullptr,
                          xstart_mse ? xstart_mse + n : nullptr, model_out + off, x0 + off, x_t + off, per_example,
                          clip, grad_weight);
  });
}

void CpuDiffusionOps::prior_bpd(const DiffusionTable& tb, double* prior, const float* x0, int N,
                                int64_t per_example) {
  const int last = tb.num_timesteps - 1;
  const double mean_coef = tb.sqrt_alphas_cumprod[last];
  const double log_var = tb.log_one_minus_alphas_cumprod[last];
  const double exp_log_var = std::exp(log_var);
  for_each_example(N, [&](int n) {
    const float* x = x0 + static_cast<int64_t>(n) * per_example;
    double sum = 0.0;
    for (int64_t i = 0; i < per_example; ++i) {
      sum += normal_kl(mean_coef * x[i], log_var, 0.0, 0.0, exp_log_var, 1.0).value;
    }
    prior[n] = sum / static_cast<double>(per_example) / kLn2;
  });
}

void CpuDiffusionOps::p_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                               const float* x_t, const float* noise, const int* t, int N, int64_t per_example) {
  check_timesteps(tb, t, N);
  std::vector<PSampleCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = p_sample_coefs(tb, t[n]);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    double xstart;
    x_prev[i] = static_cast<float>(p_sample_element(c[n], model_out[i], x_t[i], noise[i], true, &xstart));
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
  });
}

void CpuDiffusionOps::ddim_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart,
                                  const float* model_out, const float* x_t, const float* noise, const int* t,
                                  const int* t_prev, int N, int64_t per_example, double eta) {
  const std::vector<DdimCoefs> c = ddim_step_coefs(tb, t, t_prev, N, eta, noise != nullptr);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    double xstart;
    const double z = noise ? static_cast<double>(noise[i]) : 0.0;
    x_prev[i] = static_cast<float>(ddim_element(c[n], model_out[i], x_t[i], z, true, &xstart));
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
  });
}

}  // namespace

DiffusionOps& host_diffusion_ops() {
  static CpuDiffusionOps kernels;  // stateless: one for the process
  return kernels;
}

DiffusionOps& CpuOps::diffusion() { return host_diffusion_ops(); }

}  // namespace ddpm
