// The Gaussian diffusion process (see diffusion.h). Equation numbers are Ho et al. 2020.
//
// Layout of every public function: gather per-example coefficients from the float64
// tables (one small struct per example), then run an elementwise formula over
// [N, per_example] in double. The formulas are the helpers in the anonymous namespace
// below, so a CUDA kernel can reuse them one to one.
#include "core/diffusion.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "core/common.h"

namespace ddpm {

namespace {

constexpr double kLn2 = 0.69314718055994530942;
constexpr double kSqrt2OverPi = 0.79788456080286535588;

// --- schedules ----------------------------------------------------------------------

// np.linspace(start, stop, num) bit for bit: i * step + start with step = (stop - start)
// / (num - 1), and the last value set to stop.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> y(static_cast<size_t>(std::max(num, 0)));
  if (num == 1) y[0] = start;
  if (num <= 1) return y;
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
  y[num - 1] = stop;
  return y;
}

// β_end everywhere, with a linear ramp from β_start over the first int(T * frac) steps
// (the reference's _warmup_beta).
std::vector<double> warmup_betas(double beta_start, double beta_end, int T, double frac) {
  std::vector<double> betas(T, beta_end);
  const int warmup = static_cast<int>(T * frac);
  const std::vector<double> ramp = linspace(beta_start, beta_end, warmup);
  std::copy(ramp.begin(), ramp.end(), betas.begin());
  return betas;
}

// ᾱ(s) = cos²((s + 0.008) / 1.008 · π/2), Nichol & Dhariwal 2021 eq. 17.
double cosine_alpha_bar(double s) {
  const double c = std::cos((s + 0.008) / 1.008 * M_PI / 2);
  return c * c;
}

// --- elementwise formulas -------------------------------------------------------------
// (reverse_element and the sampling / L_simple formulas live in core/diffusion_math.h,
// shared with the CUDA kernels)

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

// The elementwise loops: every element of [N, D] (pure maps) or one example per
// iteration (per-example sums, each summed in a fixed order by one thread).
template <class F>
void for_each_element(int N, int64_t D, const F& f) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int64_t i = 0; i < D; ++i) f(n, static_cast<int64_t>(n) * D + i);
}

template <class F>
void for_each_example(int N, const F& f) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) f(n);
}

}  // namespace

double approx_standard_normal_cdf(double x) {
  // 0.5 (1 + tanh z) = 1 / (1 + e^{-2z}): the same value, accurate to the last bits in the
  // lower tail where 1 + tanh z cancels.
  return 1.0 / (1.0 + std::exp(-2.0 * cdf_tanh_argument(x)));
}

std::vector<double> make_beta_schedule(const std::string& name, double beta_start, double beta_end,
                                       int num_timesteps) {
  const int T = num_timesteps;
  std::vector<double> betas;
  if (name == "linear") {
    betas = linspace(beta_start, beta_end, T);
  } else if (name == "quad") {
    betas = linspace(std::sqrt(beta_start), std::sqrt(beta_end), T);
    for (double& b : betas) b = b * b;
  } else if (name == "const") {
    betas.assign(T, beta_end);
  } else if (name == "jsd") {  // 1/T, 1/(T-1), ..., 1
    betas = linspace(T, 1, T);
    for (double& b : betas) b = 1.0 / b;
  } else if (name == "warmup10") {
    betas = warmup_betas(beta_start, beta_end, T, 0.1);
  } else if (name == "warmup50") {
    betas = warmup_betas(beta_start, beta_end, T, 0.5);
  } else if (name == "cosine") {
    betas.resize(T);
    for (int i = 0; i < T; ++i) {
      const double t1 = static_cast<double>(i) / T, t2 = static_cast<double>(i + 1) / T;
      betas[i] = std::min(1.0 - cosine_alpha_bar(t2) / cosine_alpha_bar(t1), 0.999);
    }
  } else {
    input_error("diffusion.beta_schedule: unknown schedule '", name, "'");
  }
  for (int i = 0; i < T; ++i) {
    if (!(betas[i] > 0.0 && betas[i] <= 1.0)) {
      input_error("diffusion: the '", name, "' schedule gives beta_", i, " = ", betas[i], ", outside (0, 1]");
    }
  }
  return betas;
}

std::vector<int> ddim_timesteps(int num_timesteps, int num_steps) {
  // guided-diffusion tries strides 1..T-1; stride T (one step, t = 0) is allowed here too.
  for (int stride = 1; num_steps >= 1 && stride <= num_timesteps; ++stride) {
    if ((num_timesteps + stride - 1) / stride != num_steps) continue;
    std::vector<int> steps;
    for (int t = 0; t < num_timesteps; t += stride) steps.push_back(t);
    return steps;
  }
  input_error("cannot take exactly ", num_steps, " DDIM steps out of ", num_timesteps,
              " with an integer stride (try a divisor of ", num_timesteps, ")");
}

namespace {
template <class E>
E parse_choice(const char* key, const std::string& value, std::initializer_list<std::pair<const char*, E>> choices) {
  for (const auto& [name, choice] : choices) {
    if (value == name) return choice;
  }
  input_error(key, ": unknown value '", value, "'");
}
}  // namespace

Diffusion::Diffusion(const DiffusionConfig& config) {
  const int T = config.num_timesteps;
  if (T < 2) {
    input_error("diffusion.num_timesteps must be at least 2 (the clipped posterior log variance uses step 1), got ",
                T);
  }
  mean_type_ = parse_choice<MeanType>(
      "diffusion.model_mean_type", config.model_mean_type,
      {{"eps", MeanType::kEps}, {"xstart", MeanType::kXstart}, {"xprev", MeanType::kXprev}});
  var_type_ = parse_choice<VarType>("diffusion.model_var_type", config.model_var_type,
                                    {{"fixedlarge", VarType::kFixedLarge}, {"fixedsmall", VarType::kFixedSmall}});
  loss_type_ = parse_choice<LossType>("diffusion.loss_type", config.loss_type,
                                      {{"mse", LossType::kMse}, {"kl", LossType::kKl}});

  DiffusionTables& tb = tables_;
  tb.betas = make_beta_schedule(config.beta_schedule, config.beta_start, config.beta_end, T);
  const std::vector<double>& b = tb.betas;
  auto table = [T](auto f) {
    std::vector<double> v(T);
    for (int t = 0; t < T; ++t) v[t] = f(t);
    return v;
  };
  tb.alphas_cumprod.resize(T);
  double cumprod = 1.0;
  for (int t = 0; t < T; ++t) tb.alphas_cumprod[t] = cumprod *= 1.0 - b[t];
  const std::vector<double>& ac = tb.alphas_cumprod;
  tb.alphas_cumprod_prev = table([&](int t) { return t == 0 ? 1.0 : ac[t - 1]; });
  const std::vector<double>& acp = tb.alphas_cumprod_prev;
  tb.sqrt_alphas_cumprod = table([&](int t) { return std::sqrt(ac[t]); });
  tb.sqrt_one_minus_alphas_cumprod = table([&](int t) { return std::sqrt(1.0 - ac[t]); });
  tb.log_one_minus_alphas_cumprod = table([&](int t) { return std::log(1.0 - ac[t]); });
  tb.sqrt_recip_alphas_cumprod = table([&](int t) { return std::sqrt(1.0 / ac[t]); });
  tb.sqrt_recipm1_alphas_cumprod = table([&](int t) { return std::sqrt(1.0 / ac[t] - 1.0); });
  // eq. 7; β̃_0 = 0, so its log is clipped to log β̃_1
  tb.posterior_variance = table([&](int t) { return b[t] * (1.0 - acp[t]) / (1.0 - ac[t]); });
  const std::vector<double>& pv = tb.posterior_variance;
  tb.posterior_log_variance_clipped = table([&](int t) { return std::log(pv[t == 0 ? 1 : t]); });
  tb.posterior_mean_coef1 = table([&](int t) { return b[t] * std::sqrt(acp[t]) / (1.0 - ac[t]); });
  tb.posterior_mean_coef2 = table([&](int t) { return (1.0 - acp[t]) * std::sqrt(1.0 - b[t]) / (1.0 - ac[t]); });
  if (var_type_ == VarType::kFixedLarge) {
    // σ²_t = β_t, but log σ²_0 = log β̃_1: the reference sets it so for a better decoder
    // likelihood (its variance table keeps β_0; only the log variance is ever used).
    tb.model_variance = b;
    tb.model_log_variance = table([&](int t) { return std::log(t == 0 ? pv[1] : b[t]); });
  } else {
    tb.model_variance = pv;
    tb.model_log_variance = tb.posterior_log_variance_clipped;
  }
}

void Diffusion::check_timesteps(const int* t, int N) const {
  for (int n = 0; n < N; ++n) {
    DDPM_CHECK(t[n] >= 0 && t[n] < num_timesteps(), "timestep ", t[n], " of example ", n, " outside [0, ",
               num_timesteps(), ")");
  }
}

// --- the forward process ------------------------------------------------------------

void Diffusion::q_sample(float* x_t, const float* x0, const float* noise, const int* t, int N,
                         int64_t per_example) const {
  check_timesteps(t, N);
  // The coefficients are two table reads: taken per element, so a training step
  // allocates no per-example array.
  for_each_element(N, per_example, [&](int n, int64_t i) {
    x_t[i] = static_cast<float>(q_sample_element(q_sample_coefs(tables_, t[n]), x0[i], noise[i]));
  });
}

void Diffusion::q_mean_variance(float* mean, double* variance, double* log_variance, const float* x0, const int* t,
                                int N, int64_t per_example) const {
  check_timesteps(t, N);
  const DiffusionTables& tb = tables_;
  for (int n = 0; n < N; ++n) {
    if (variance) variance[n] = 1.0 - tb.alphas_cumprod[t[n]];
    if (log_variance) log_variance[n] = tb.log_one_minus_alphas_cumprod[t[n]];
  }
  for_each_element(N, per_example,
                   [&](int n, int64_t i) { mean[i] = static_cast<float>(tb.sqrt_alphas_cumprod[t[n]] * x0[i]); });
}

void Diffusion::q_posterior(float* mean, double* variance, double* log_variance_clipped, const float* x0,
                            const float* x_t, const int* t, int N, int64_t per_example) const {
  check_timesteps(t, N);
  const DiffusionTables& tb = tables_;
  for (int n = 0; n < N; ++n) {
    if (variance) variance[n] = tb.posterior_variance[t[n]];
    if (log_variance_clipped) log_variance_clipped[n] = tb.posterior_log_variance_clipped[t[n]];
  }
  for_each_element(N, per_example, [&](int n, int64_t i) {
    mean[i] = static_cast<float>(tb.posterior_mean_coef1[t[n]] * x0[i] + tb.posterior_mean_coef2[t[n]] * x_t[i]);
  });
}

// --- the reverse process ------------------------------------------------------------

ReverseCoefs reverse_coefs(const DiffusionTables& tb, MeanType type, int t) {
  ReverseCoefs c;
  c.mean_from_xstart = tb.posterior_mean_coef1[t];
  c.mean_from_xt = tb.posterior_mean_coef2[t];
  switch (type) {
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

QSampleCoefs q_sample_coefs(const DiffusionTables& tb, int t) {
  return {tb.sqrt_alphas_cumprod[t], tb.sqrt_one_minus_alphas_cumprod[t]};
}

PSampleCoefs p_sample_coefs(const DiffusionTables& tb, MeanType type, int t) {
  return {reverse_coefs(tb, type, t), t == 0 ? 0.0 : std::exp(0.5 * tb.model_log_variance[t])};
}

MseCoefs mse_coefs(const DiffusionTables& tb, int t) { return {tb.posterior_mean_coef1[t], tb.posterior_mean_coef2[t]}; }

DdimCoefs ddim_coefs(const DiffusionTables& tb, MeanType type, int t, int t_prev, double eta) {
  DDPM_CHECK(t_prev >= -1 && t_prev < t, "DDIM step from ", t, " to ", t_prev);
  const double ab = tb.alphas_cumprod[t];
  const double ab_prev = t_prev >= 0 ? tb.alphas_cumprod[t_prev] : 1.0;
  const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
  DdimCoefs c;
  c.reverse = reverse_coefs(tb, type, t);
  c.sqrt_recip = tb.sqrt_recip_alphas_cumprod[t];
  c.sqrt_recipm1 = tb.sqrt_recipm1_alphas_cumprod[t];
  c.from_xstart = std::sqrt(ab_prev);
  // 1 - ᾱ_prev - σ² >= 0 for η <= 1; the max only absorbs round-off at η = 1
  c.from_eps = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
  c.sigma = t_prev >= 0 ? sigma : 0.0;  // no noise on the step to x_0
  return c;
}

namespace {
std::vector<ReverseCoefs> gather_reverse_coefs(const DiffusionTables& tb, MeanType type, const int* t, int N) {
  std::vector<ReverseCoefs> coefs(N);
  for (int n = 0; n < N; ++n) coefs[n] = reverse_coefs(tb, type, t[n]);
  return coefs;
}
}  // namespace

void Diffusion::predict_xstart(float* pred_xstart, const float* model_out, const float* x_t, const int* t, int N,
                               int64_t per_example, bool clip) const {
  check_timesteps(t, N);
  const std::vector<ReverseCoefs> c = gather_reverse_coefs(tables_, mean_type_, t, N);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    pred_xstart[i] = static_cast<float>(reverse_element(c[n], model_out[i], x_t[i], clip).xstart);
  });
}

void Diffusion::p_mean_variance(float* mean, float* pred_xstart, double* variance, double* log_variance,
                                const float* model_out, const float* x_t, const int* t, int N, int64_t per_example,
                                bool clip) const {
  check_timesteps(t, N);
  for (int n = 0; n < N; ++n) {
    if (variance) variance[n] = tables_.model_variance[t[n]];
    if (log_variance) log_variance[n] = tables_.model_log_variance[t[n]];
  }
  const std::vector<ReverseCoefs> c = gather_reverse_coefs(tables_, mean_type_, t, N);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    const ReverseElement r = reverse_element(c[n], model_out[i], x_t[i], clip);
    mean[i] = static_cast<float>(r.mean);
    if (pred_xstart) pred_xstart[i] = static_cast<float>(r.xstart);
  });
}

void Diffusion::p_sample(float* x_prev, float* pred_xstart, const float* model_out, const float* x_t,
                         const float* noise, const int* t, int N, int64_t per_example, bool clip) const {
  check_timesteps(t, N);
  std::vector<PSampleCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = p_sample_coefs(tables_, mean_type_, t[n]);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    double xstart;
    x_prev[i] = static_cast<float>(p_sample_element(c[n], model_out[i], x_t[i], noise[i], clip, &xstart));
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
  });
}

void Diffusion::ddim_sample(float* x_prev, float* pred_xstart, const float* model_out, const float* x_t,
                            const float* noise, const int* t, const int* t_prev, int N, int64_t per_example,
                            double eta, bool clip) const {
  check_timesteps(t, N);
  DDPM_CHECK(eta >= 0.0 && eta <= 1.0, "DDIM eta ", eta, " outside [0, 1]");
  DDPM_CHECK(eta == 0.0 || noise != nullptr, "DDIM with eta > 0 needs noise");
  std::vector<DdimCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = ddim_coefs(tables_, mean_type_, t[n], t_prev[n], eta);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    double xstart;
    const double z = noise ? static_cast<double>(noise[i]) : 0.0;
    x_prev[i] = static_cast<float>(ddim_element(c[n], model_out[i], x_t[i], z, clip, &xstart));
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
  });
}

// --- losses -------------------------------------------------------------------------

void Diffusion::training_losses(double* losses, float* grad, const float* model_out, const float* x0,
                                const float* x_t, const float* noise, const int* t, int N, int64_t per_example,
                                double grad_weight) const {
  if (loss_type_ == LossType::kKl) {  // unclipped x̂_0, as the reference's training_losses
    vb_terms_bpd(losses, grad, nullptr, model_out, x0, x_t, t, N, per_example, /*clip=*/false, grad_weight);
    return;
  }
  check_timesteps(t, N);
  // L_simple (eq. 14) and its x_0 / x_{t-1} analogues: mean of (target - out)²
  const DiffusionTables& tb = tables_;
  const double inv_d = 1.0 / static_cast<double>(per_example);
  for_each_example(N, [&](int n) {
    const MseCoefs c = mse_coefs(tb, t[n]);
    const int64_t base = static_cast<int64_t>(n) * per_example;
    double sum = 0.0;
    for (int64_t i = base; i < base + per_example; ++i) {
      const double diff = mse_target(mean_type_, c, x0[i], x_t[i], noise[i]) - model_out[i];
      sum += diff * diff;
      if (grad) grad[i] = static_cast<float>(mse_grad(grad_weight, diff, inv_d));
    }
    losses[n] = sum * inv_d;
  });
}

namespace {
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

void vb_terms(const Diffusion& d, double* terms, float* grad, float* pred_xstart, double* xstart_mse,
              const float* model_out, const float* x0, const float* x_t, const int* t, int N, int64_t per_example,
              bool clip, double grad_weight) {
  const DiffusionTables& tb = d.tables();
  // Each example's coefficients in its own iteration: no per-example array to allocate.
  for_each_example(N, [&](int n) {
    VbExample ex;
    ex.reverse = reverse_coefs(tb, d.mean_type(), t[n]);
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
}  // namespace

void Diffusion::vb_terms_bpd(double* terms, float* grad, float* pred_xstart, const float* model_out, const float* x0,
                             const float* x_t, const int* t, int N, int64_t per_example, bool clip,
                             double grad_weight) const {
  check_timesteps(t, N);
  vb_terms(*this, terms, grad, pred_xstart, nullptr, model_out, x0, x_t, t, N, per_example, clip, grad_weight);
}

void Diffusion::prior_bpd(double* prior, const float* x0, int N, int64_t per_example) const {
  const int last = num_timesteps() - 1;
  const double mean_coef = tables_.sqrt_alphas_cumprod[last];
  const double log_var = tables_.log_one_minus_alphas_cumprod[last];
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

BpdResult Diffusion::calc_bpd_loop(const float* x0, int N, int64_t per_example, const DenoiseFn& model,
                                   const NoiseFn& noise, bool clip) const {
  const int T = num_timesteps();
  const size_t elems = static_cast<size_t>(N) * static_cast<size_t>(per_example);
  BpdResult r;
  r.total_bpd.assign(N, 0.0);
  r.terms_bpd.assign(static_cast<size_t>(N) * T, 0.0);
  r.prior_bpd.assign(N, 0.0);
  r.mse.assign(static_cast<size_t>(N) * T, 0.0);
  std::vector<float> eps(elems), x_t(elems), out(elems);
  std::vector<int> t_batch(N);
  std::vector<double> terms(N), mse(N);
  for (int t = T - 1; t >= 0; --t) {
    std::fill(t_batch.begin(), t_batch.end(), t);
    noise(eps.data(), t, N);
    q_sample(x_t.data(), x0, eps.data(), t_batch.data(), N, per_example);
    model(out.data(), x_t.data(), t_batch.data(), N);
    vb_terms(*this, terms.data(), nullptr, nullptr, mse.data(), out.data(), x0, x_t.data(), t_batch.data(), N,
             per_example, clip, 0.0);
    for (int n = 0; n < N; ++n) {
      r.terms_bpd[static_cast<size_t>(n) * T + t] = terms[n];
      r.mse[static_cast<size_t>(n) * T + t] = mse[n];
    }
  }
  prior_bpd(r.prior_bpd.data(), x0, N, per_example);
  for (int n = 0; n < N; ++n) {  // reduce_sum over t in index order, then the prior
    double total = 0.0;
    for (int t = 0; t < T; ++t) total += r.terms_bpd[static_cast<size_t>(n) * T + t];
    r.total_bpd[n] = total + r.prior_bpd[n];
  }
  return r;
}

}  // namespace ddpm
