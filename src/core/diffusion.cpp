// The Gaussian diffusion process (see diffusion.h). Equation numbers are Ho et al. 2020.
//
// Layout of every host function: gather per-example coefficients from the float64
// tables (core/diffusion_table.h), then run an elementwise formula of
// core/diffusion_math.h over [N, per_example] in double; the kernels themselves are
// cpu/diffusion.cpp (core/diffusion_ops.h).
#include "core/diffusion.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "core/common.h"
#include "core/diffusion_ops.h"
#include "core/example_loops.h"

namespace ddpm {

namespace {

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

}  // namespace

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
  DiffusionTable& tb = table_;
  tb.num_timesteps = T;
  tb.mean_type = parse_choice<MeanType>(
      "diffusion.model_mean_type", config.model_mean_type,
      {{"eps", MeanType::kEps}, {"xstart", MeanType::kXstart}, {"xprev", MeanType::kXprev}});
  tb.var_type = parse_choice<VarType>("diffusion.model_var_type", config.model_var_type,
                                      {{"fixedlarge", VarType::kFixedLarge}, {"fixedsmall", VarType::kFixedSmall}});
  tb.loss_type = parse_choice<LossType>("diffusion.loss_type", config.loss_type,
                                        {{"mse", LossType::kMse}, {"kl", LossType::kKl}});

  auto keep = [this](std::vector<double> v) {
    arrays_.push_back(std::move(v));
    return arrays_.back().data();
  };
  auto table = [T, &keep](auto f) {
    std::vector<double> v(T);
    for (int t = 0; t < T; ++t) v[t] = f(t);
    return keep(std::move(v));
  };
  const double* b = tb.betas = keep(make_beta_schedule(config.beta_schedule, config.beta_start, config.beta_end, T));
  std::vector<double> cumprods(T);
  double cumprod = 1.0;
  for (int t = 0; t < T; ++t) cumprods[t] = cumprod *= 1.0 - b[t];
  const double* ac = tb.alphas_cumprod = keep(std::move(cumprods));
  const double* acp = tb.alphas_cumprod_prev = table([&](int t) { return t == 0 ? 1.0 : ac[t - 1]; });
  tb.sqrt_alphas_cumprod = table([&](int t) { return std::sqrt(ac[t]); });
  tb.sqrt_one_minus_alphas_cumprod = table([&](int t) { return std::sqrt(1.0 - ac[t]); });
  tb.log_one_minus_alphas_cumprod = table([&](int t) { return std::log(1.0 - ac[t]); });
  tb.sqrt_recip_alphas_cumprod = table([&](int t) { return std::sqrt(1.0 / ac[t]); });
  tb.sqrt_recipm1_alphas_cumprod = table([&](int t) { return std::sqrt(1.0 / ac[t] - 1.0); });
  // eq. 7; β̃_0 = 0, so its log is clipped to log β̃_1
  const double* pv = tb.posterior_variance = table([&](int t) { return b[t] * (1.0 - acp[t]) / (1.0 - ac[t]); });
  tb.posterior_log_variance_clipped = table([&](int t) { return std::log(pv[t == 0 ? 1 : t]); });
  tb.posterior_mean_coef1 = table([&](int t) { return b[t] * std::sqrt(acp[t]) / (1.0 - ac[t]); });
  tb.posterior_mean_coef2 = table([&](int t) { return (1.0 - acp[t]) * std::sqrt(1.0 - b[t]) / (1.0 - ac[t]); });
  if (tb.var_type == VarType::kFixedLarge) {
    // σ²_t = β_t, but log σ²_0 = log β̃_1: the reference sets it so for a better decoder
    // likelihood (its variance table keeps β_0; only the log variance is ever used).
    tb.model_variance = b;
    tb.model_log_variance = table([&](int t) { return std::log(t == 0 ? pv[1] : b[t]); });
  } else {
    tb.model_variance = pv;
    tb.model_log_variance = tb.posterior_log_variance_clipped;
  }
}

// --- the forward process ------------------------------------------------------------

void Diffusion::q_mean_variance(float* mean, double* variance, double* log_variance, const float* x0, const int* t,
                                int N, int64_t per_example) const {
  check_timesteps(table_, t, N);
  const DiffusionTable& tb = table_;
  for (int n = 0; n < N; ++n) {
    if (variance) variance[n] = 1.0 - tb.alphas_cumprod[t[n]];
    if (log_variance) log_variance[n] = tb.log_one_minus_alphas_cumprod[t[n]];
  }
  for_each_element(N, per_example,
                   [&](int n, int64_t i) { mean[i] = static_cast<float>(tb.sqrt_alphas_cumprod[t[n]] * x0[i]); });
}

void Diffusion::q_posterior(float* mean, double* variance, double* log_variance_clipped, const float* x0,
                            const float* x_t, const int* t, int N, int64_t per_example) const {
  check_timesteps(table_, t, N);
  const DiffusionTable& tb = table_;
  for (int n = 0; n < N; ++n) {
    if (variance) variance[n] = tb.posterior_variance[t[n]];
    if (log_variance_clipped) log_variance_clipped[n] = tb.posterior_log_variance_clipped[t[n]];
  }
  for_each_element(N, per_example, [&](int n, int64_t i) {
    mean[i] = static_cast<float>(tb.posterior_mean_coef1[t[n]] * x0[i] + tb.posterior_mean_coef2[t[n]] * x_t[i]);
  });
}

// --- the reverse process ------------------------------------------------------------

namespace {
std::vector<ReverseCoefs> gather_reverse_coefs(const DiffusionTable& tb, const int* t, int N) {
  std::vector<ReverseCoefs> coefs(N);
  for (int n = 0; n < N; ++n) coefs[n] = reverse_coefs(tb, t[n]);
  return coefs;
}
}  // namespace

void Diffusion::predict_xstart(float* pred_xstart, const float* model_out, const float* x_t, const int* t, int N,
                               int64_t per_example, bool clip) const {
  check_timesteps(table_, t, N);
  const std::vector<ReverseCoefs> c = gather_reverse_coefs(table_, t, N);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    pred_xstart[i] = static_cast<float>(reverse_element(c[n], model_out[i], x_t[i], clip).xstart);
  });
}

void Diffusion::p_mean_variance(float* mean, float* pred_xstart, double* variance, double* log_variance,
                                const float* model_out, const float* x_t, const int* t, int N, int64_t per_example,
                                bool clip) const {
  check_timesteps(table_, t, N);
  for (int n = 0; n < N; ++n) {
    if (variance) variance[n] = table_.model_variance[t[n]];
    if (log_variance) log_variance[n] = table_.model_log_variance[t[n]];
  }
  const std::vector<ReverseCoefs> c = gather_reverse_coefs(table_, t, N);
  for_each_element(N, per_example, [&](int n, int64_t i) {
    const ReverseElement r = reverse_element(c[n], model_out[i], x_t[i], clip);
    mean[i] = static_cast<float>(r.mean);
    if (pred_xstart) pred_xstart[i] = static_cast<float>(r.xstart);
  });
}

// --- the variational bound ---------------------------------------------------------

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
  DiffusionOps& kernels = host_diffusion_ops();
  for (int t = T - 1; t >= 0; --t) {
    std::fill(t_batch.begin(), t_batch.end(), t);
    noise(eps.data(), t, N);
    kernels.q_sample(table_, x_t.data(), x0, eps.data(), t_batch.data(), N, per_example);
    model(out.data(), x_t.data(), t_batch.data(), N);
    kernels.vb_terms_bpd(table_, terms.data(), nullptr, nullptr, mse.data(), out.data(), x0, x_t.data(),
                         t_batch.data(), N, per_example, clip, 0.0);
    for (int n = 0; n < N; ++n) {
      r.terms_bpd[static_cast<size_t>(n) * T + t] = terms[n];
      r.mse[static_cast<size_t>(n) * T + t] = mse[n];
    }
  }
  kernels.prior_bpd(table_, r.prior_bpd.data(), x0, N, per_example);
  for (int n = 0; n < N; ++n) {  // reduce_sum over t in index order, then the prior
    double total = 0.0;
    for (int t = 0; t < T; ++t) total += r.terms_bpd[static_cast<size_t>(n) * T + t];
    r.total_bpd[n] = total + r.prior_bpd[n];
  }
  return r;
}

}  // namespace ddpm
