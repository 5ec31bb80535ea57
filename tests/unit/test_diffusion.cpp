// The diffusion process against the numpy float64 reference
// (tests/reference/make_diffusion_reference.py -> golden_diffusion.h5), plus properties
// that need no reference: q(x_t | x_0) is t single forward steps, the loss gradients
// match finite differences, DDIM with η = 1 on consecutive steps is ancestral sampling
// with σ² = β̃, and an oracle model has zero KL terms.
#define BOOST_TEST_MODULE diffusion
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/common.h"
#include "core/config.h"
#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "core/h5.h"

using namespace ddpm;

namespace {

const std::string kGolden = std::string(DDPM_SOURCE_DIR) + "/tests/reference/golden_diffusion.h5";

std::vector<double> read_f64(const h5::File& f, const std::string& name) {
  h5::Lock lock;
  const h5::DatasetInfo info = f.info(name);
  BOOST_REQUIRE_MESSAGE(info.dtype == h5::DType::kFloat64, name << " is not float64");
  std::vector<double> out(static_cast<size_t>(info.numel()));
  h5::Handle ds = f.open_dataset(name);
  BOOST_REQUIRE(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0);
  return out;
}

std::vector<float> read_f32(const h5::File& f, const std::string& name) {
  std::vector<float> out(static_cast<size_t>(f.info(name).numel()));
  f.read_f32(name, out.data(), static_cast<int64_t>(out.size()));
  return out;
}

std::vector<int> read_int(const h5::File& f, const std::string& name) {
  std::vector<int64_t> v(static_cast<size_t>(f.info(name).numel()));
  f.read_i64(name, v.data(), static_cast<int64_t>(v.size()));
  return std::vector<int>(v.begin(), v.end());
}

// Largest |actual - expected| / max(|expected|, floor); infinities must match exactly.
template <class A, class E>
double worst_rel_error(const A& actual, const E& expected, double floor, size_t* where) {
  BOOST_REQUIRE_EQUAL(actual.size(), expected.size());
  double worst = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    double err;
    if (std::isinf(e) || std::isinf(a)) {
      err = a == e ? 0.0 : INFINITY;
    } else {
      err = std::fabs(a - e) / std::max(std::fabs(e), floor);
      if (std::isnan(err)) err = INFINITY;
    }
    if (err > worst) {
      worst = err;
      *where = i;
    }
  }
  return worst;
}

template <class A, class E>
void check_close(const A& actual, const E& expected, double rel, double floor, const std::string& what) {
  size_t where = 0;
  const double err = worst_rel_error(actual, expected, floor, &where);
  BOOST_TEST_MESSAGE(what << ": worst relative error " << err);  // --log_level=message
  BOOST_TEST(err <= rel, what << ": relative error " << err << " at " << where << " (got "
                              << (actual.empty() ? 0.0 : static_cast<double>(actual[where])) << ", expected "
                              << (expected.empty() ? 0.0 : static_cast<double>(expected[where])) << ")");
}

DiffusionConfig make_config(const std::string& schedule, int T, const std::string& mean, const std::string& var,
                            const std::string& loss = "mse", double beta_start = 1e-4, double beta_end = 0.02) {
  DiffusionConfig c;
  c.beta_schedule = schedule;
  c.num_timesteps = T;
  c.model_mean_type = mean;
  c.model_var_type = var;
  c.loss_type = loss;
  c.beta_start = beta_start;
  c.beta_end = beta_end;
  return c;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

// The named table of T values (model_log_variance of either variance type).
std::vector<double> table_by_name(const Diffusion& large, const Diffusion& small, const std::string& name) {
  static const std::map<std::string, const double* DiffusionTable::*> kFields = {
      {"betas", &DiffusionTable::betas},
      {"alphas_cumprod", &DiffusionTable::alphas_cumprod},
      {"alphas_cumprod_prev", &DiffusionTable::alphas_cumprod_prev},
      {"sqrt_alphas_cumprod", &DiffusionTable::sqrt_alphas_cumprod},
      {"sqrt_one_minus_alphas_cumprod", &DiffusionTable::sqrt_one_minus_alphas_cumprod},
      {"log_one_minus_alphas_cumprod", &DiffusionTable::log_one_minus_alphas_cumprod},
      {"sqrt_recip_alphas_cumprod", &DiffusionTable::sqrt_recip_alphas_cumprod},
      {"sqrt_recipm1_alphas_cumprod", &DiffusionTable::sqrt_recipm1_alphas_cumprod},
      {"posterior_variance", &DiffusionTable::posterior_variance},
      {"posterior_log_variance_clipped", &DiffusionTable::posterior_log_variance_clipped},
      {"posterior_mean_coef1", &DiffusionTable::posterior_mean_coef1},
      {"posterior_mean_coef2", &DiffusionTable::posterior_mean_coef2},
  };
  const DiffusionTable& tb = large.table();
  const double* values = nullptr;
  if (name == "model_log_variance_fixedlarge") values = tb.model_log_variance;
  if (name == "model_log_variance_fixedsmall") values = small.table().model_log_variance;
  const auto it = kFields.find(name);
  if (it != kFields.end()) values = tb.*(it->second);
  BOOST_REQUIRE_MESSAGE(values != nullptr, "unknown table " << name);
  return std::vector<double>(values, values + tb.num_timesteps);
}

// The kernels the host functions run (core/diffusion_ops.h): the CPU backend's.
DiffusionOps& kernels() { return host_diffusion_ops(); }

// The fixed single-step inputs of /process.
struct ProcessInputs {
  std::vector<int> t;
  std::vector<float> x0, noise, x_t, sample_noise;
  int N = 0;
  int64_t D = 0;
  explicit ProcessInputs(const h5::File& f)
      : t(read_int(f, "process/t")),
        x0(read_f32(f, "process/x0")),
        noise(read_f32(f, "process/noise")),
        x_t(read_f32(f, "process/x_t")),
        sample_noise(read_f32(f, "process/sample_noise")),
        N(static_cast<int>(t.size())),
        D(static_cast<int64_t>(x0.size()) / N) {}
};

}  // namespace

BOOST_AUTO_TEST_CASE(schedule_tables_match_numpy) {
  const h5::File f = h5::File::open_read(kGolden);
  for (const char* schedule : {"linear", "quad", "const", "jsd", "warmup10", "warmup50", "cosine"}) {
    for (int T : {1000, 37}) {
      BOOST_TEST_CONTEXT(schedule << " T=" << T) {
        const std::string group = cat("schedules/", schedule, "/T", T);
        const Diffusion large(make_config(schedule, T, "eps", "fixedlarge"));
        const Diffusion small(make_config(schedule, T, "eps", "fixedsmall"));
        const std::vector<int> index = read_int(f, group + "/index");
        const std::vector<double> golden = read_f64(f, group + "/tables");
        const std::vector<std::string> names = split_commas(f.read_attr_str(group, "names"));
        BOOST_REQUIRE_EQUAL(golden.size(), names.size() * index.size());
        for (size_t k = 0; k < names.size(); ++k) {
          const std::vector<double> table = table_by_name(large, small, names[k]);
          BOOST_REQUIRE_EQUAL(static_cast<int>(table.size()), T);
          const auto row = golden.begin() + static_cast<std::ptrdiff_t>(k * index.size());
          std::vector<double> ours, expected(row, row + static_cast<std::ptrdiff_t>(index.size()));
          for (int i : index) ours.push_back(table[i]);
          check_close(ours, expected, 1e-12, 1e-300, names[k]);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(q_of_x_t_given_x0_is_t_single_steps) {
  // x_s = sqrt(1 - β_s) x_{s-1} + sqrt(β_s) ε_s composes to mean coefficient ∏ sqrt(1 - β_s)
  // and variance v_s = (1 - β_s) v_{s-1} + β_s; eq. 4 says these are sqrt(ᾱ_t) and 1 - ᾱ_t.
  for (const char* schedule : {"linear", "cosine", "warmup10"}) {
    const Diffusion d(make_config(schedule, 1000, "eps", "fixedlarge"));
    const DiffusionTable& tb = d.table();
    double mean_coef = 1.0, variance = 0.0;
    for (int t = 0; t < 1000; ++t) {
      mean_coef *= std::sqrt(1.0 - tb.betas[t]);
      variance = (1.0 - tb.betas[t]) * variance + tb.betas[t];
      if (t == 0 || t == 1 || t == 9 || t == 250 || t == 999) {
        BOOST_TEST_CONTEXT(schedule << " t=" << t) {
          BOOST_TEST(std::fabs(mean_coef / tb.sqrt_alphas_cumprod[t] - 1.0) < 1e-12);
          BOOST_TEST(std::fabs(variance / (1.0 - tb.alphas_cumprod[t]) - 1.0) < 1e-12);
          // and the API reports the same
          const float x0 = 0.5f;
          float mean = 0.0f;
          double var = 0.0, log_var = 0.0;
          d.q_mean_variance(&mean, &var, &log_var, &x0, &t, 1, 1);
          BOOST_TEST(std::fabs(var / variance - 1.0) < 1e-12);
          BOOST_TEST(std::fabs(log_var - std::log(variance)) < 1e-9);
          BOOST_TEST(std::fabs(mean - 0.5 * mean_coef) < 1e-7);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(single_step_quantities_match_numpy) {
  const h5::File f = h5::File::open_read(kGolden);
  const ProcessInputs in(f);
  const int N = in.N;
  const int64_t D = in.D;
  const size_t ND = in.x0.size();
  {
    const Diffusion d(make_config("linear", 1000, "eps", "fixedlarge"));
    std::vector<float> out(ND);
    std::vector<double> var(N), log_var(N), prior(N);
    kernels().q_sample(d.table(), out.data(), in.x0.data(), in.noise.data(), in.t.data(), N, D);
    check_close(out, read_f32(f, "process/q_sample"), 1e-6, 1e-2, "q_sample");
    d.q_mean_variance(out.data(), var.data(), log_var.data(), in.x0.data(), in.t.data(), N, D);
    check_close(out, read_f32(f, "process/q_mean"), 1e-6, 1e-2, "q_mean");
    check_close(log_var, read_f64(f, "process/q_log_variance"), 1e-12, 1e-300, "q_log_variance");
    d.q_posterior(out.data(), var.data(), log_var.data(), in.x0.data(), in.x_t.data(), in.t.data(), N, D);
    check_close(out, read_f32(f, "process/posterior_mean"), 1e-6, 1e-2, "posterior_mean");
    check_close(var, read_f64(f, "process/posterior_variance"), 1e-12, 1e-300, "posterior_variance");
    check_close(log_var, read_f64(f, "process/posterior_log_variance_clipped"), 1e-12, 1e-300, "posterior_logvar");
    kernels().prior_bpd(d.table(), prior.data(), in.x0.data(), N, D);
    check_close(prior, read_f64(f, "process/prior_bpd"), 1e-6, 1e-12, "prior_bpd");
  }
  for (const char* mean_type : {"eps", "xstart", "xprev"}) {
    const std::vector<float> model_out = read_f32(f, cat("process/model_out_", mean_type));
    for (const char* var_type : {"fixedlarge", "fixedsmall"}) {
      BOOST_TEST_CONTEXT(mean_type << " " << var_type) {
        const std::string g = cat("process/", mean_type, "_", var_type, "/");
        std::vector<float> mean(ND), xstart(ND), grad(ND);
        std::vector<double> log_var(N), terms(N);
        for (bool clip : {false, true}) {
          const std::string sfx = clip ? "_clipped" : "";
          const Diffusion d(make_config("linear", 1000, mean_type, var_type));
          d.p_mean_variance(mean.data(), xstart.data(), nullptr, log_var.data(), model_out.data(), in.x_t.data(),
                            in.t.data(), N, D, clip);
          check_close(mean, read_f32(f, g + "p_mean" + sfx), 1e-6, 1e-2, "p_mean" + sfx);
          check_close(xstart, read_f32(f, g + "pred_xstart" + sfx), 1e-6, 1e-2, "pred_xstart" + sfx);
          check_close(log_var, read_f64(f, g + "model_log_variance"), 1e-12, 1e-300, "model_log_variance");
          d.predict_xstart(xstart.data(), model_out.data(), in.x_t.data(), in.t.data(), N, D, clip);
          check_close(xstart, read_f32(f, g + "pred_xstart" + sfx), 1e-6, 1e-2, "predict_xstart" + sfx);
          kernels().vb_terms_bpd(d.table(), terms.data(), nullptr, nullptr, nullptr, model_out.data(), in.x0.data(),
                                 in.x_t.data(), in.t.data(), N, D, clip, 0.0);
          check_close(terms, read_f64(f, g + "vb_terms" + sfx), 1e-6, 1e-12, "vb_terms" + sfx);
        }
        const Diffusion mse(make_config("linear", 1000, mean_type, var_type, "mse"));
        kernels().training_losses(mse.table(), terms.data(), grad.data(), model_out.data(), in.x0.data(), in.x_t.data(),
                                  in.noise.data(), in.t.data(), N, D, 1.0 / N);
        check_close(terms, read_f64(f, g + "mse"), 1e-6, 1e-12, "mse loss");
        check_close(grad, read_f32(f, g + "grad_mse"), 1e-5, 1e-3, "mse gradient vs numpy finite differences");
        const Diffusion kl(make_config("linear", 1000, mean_type, var_type, "kl"));
        kernels().training_losses(kl.table(), terms.data(), grad.data(), model_out.data(), in.x0.data(), in.x_t.data(),
                                  in.noise.data(), in.t.data(), N, D, 1.0 / N);
        check_close(terms, read_f64(f, g + "vb_terms"), 1e-6, 1e-12, "kl loss");
        check_close(grad, read_f32(f, g + "grad_kl"), 1e-4, 1e-3, "kl gradient vs numpy finite differences");
        // Algorithm 2: x_{t-1} = μ_θ + σ_t z, nothing added at t = 0
        std::vector<float> x_prev(ND);
        kernels().p_sample(mse.table(), x_prev.data(), xstart.data(), model_out.data(), in.x_t.data(),
                           in.sample_noise.data(), in.t.data(), N, D);
        check_close(x_prev, read_f32(f, g + "p_sample"), 1e-6, 1e-2, "p_sample");
        check_close(xstart, read_f32(f, g + "pred_xstart_clipped"), 1e-6, 1e-2, "p_sample's pred_xstart");
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(loss_gradients_match_finite_differences) {
  // Central differences of the batch loss (mean over examples, in double) in each model
  // output, against the analytic gradient, for every mean type, variance and loss. The
  // inputs have t = 0 (decoder NLL, one example with floored probabilities) and pixels
  // at -1 and 1 in every example.
  const h5::File f = h5::File::open_read(kGolden);
  const ProcessInputs in(f);
  const int N = in.N;
  const int64_t D = in.D;
  for (const char* mean_type : {"eps", "xstart", "xprev"}) {
    std::vector<float> out = read_f32(f, cat("process/model_out_", mean_type));
    for (const char* var_type : {"fixedlarge", "fixedsmall"}) {
      for (const char* loss : {"mse", "kl"}) {
        BOOST_TEST_CONTEXT(mean_type << " " << var_type << " " << loss) {
          const Diffusion d(make_config("linear", 1000, mean_type, var_type, loss));
          std::vector<double> losses(N);
          std::vector<float> grad(out.size());
          auto batch_loss = [&]() {
            kernels().training_losses(d.table(), losses.data(), nullptr, out.data(), in.x0.data(), in.x_t.data(),
                                      in.noise.data(), in.t.data(), N, D, 0.0);
            double s = 0.0;
            for (double l : losses) s += l;
            return s / N;
          };
          kernels().training_losses(d.table(), losses.data(), grad.data(), out.data(), in.x0.data(), in.x_t.data(),
                                    in.noise.data(), in.t.data(), N, D, 1.0 / N);
          std::vector<double> numeric(out.size());
          for (size_t i = 0; i < out.size(); ++i) {
            const float saved = out[i];
            // h small against the decoder's σ ≈ 7e-3 at t = 0 (x_0 / x_{t-1} outputs move μ_θ 1:1)
            const float hi = saved + 1e-4f * std::max(1.0f, std::fabs(saved)), lo = 2 * saved - hi;
            out[i] = hi;
            const double l_hi = batch_loss();
            out[i] = lo;
            const double l_lo = batch_loss();
            out[i] = saved;
            numeric[i] = (l_hi - l_lo) / (static_cast<double>(hi) - lo);
          }
          double max_abs = 0.0;
          for (double g : numeric) max_abs = std::max(max_abs, std::fabs(g));
          BOOST_TEST(max_abs > 0.0);
          check_close(grad, numeric, 1e-4, 1e-3 * max_abs, "analytic vs central difference");
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(p_sample_adds_no_noise_at_t0) {
  const h5::File f = h5::File::open_read(kGolden);
  const ProcessInputs in(f);
  const std::vector<float> out = read_f32(f, "process/model_out_eps");
  const Diffusion d(make_config("linear", 1000, "eps", "fixedlarge"));
  std::vector<float> a(out.size()), b(out.size()), mean(out.size()), other_noise(in.sample_noise);
  for (float& z : other_noise) z = -3.0f * z + 1.0f;
  kernels().p_sample(d.table(), a.data(), nullptr, out.data(), in.x_t.data(), in.sample_noise.data(), in.t.data(), in.N,
                     in.D);
  kernels().p_sample(d.table(), b.data(), nullptr, out.data(), in.x_t.data(), other_noise.data(), in.t.data(), in.N,
                     in.D);
  d.p_mean_variance(mean.data(), nullptr, nullptr, nullptr, out.data(), in.x_t.data(), in.t.data(), in.N, in.D, true);
  for (int n = 0; n < in.N; ++n) {
    const int64_t first = n * in.D;
    BOOST_TEST_CONTEXT("example " << n << " t=" << in.t[n]) {
      if (in.t[n] == 0) {
        BOOST_TEST(std::equal(a.begin() + first, a.begin() + first + in.D, mean.begin() + first));
        BOOST_TEST(std::equal(b.begin() + first, b.begin() + first + in.D, mean.begin() + first));
      } else {
        BOOST_TEST(a[first] != b[first]);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(ddim_timesteps_are_guided_diffusion_spacing) {
  std::vector<int> expected;
  for (int t = 0; t < 1000; t += 20) expected.push_back(t);
  BOOST_TEST(ddim_timesteps(1000, 50) == expected, boost::test_tools::per_element());
  BOOST_TEST(ddim_timesteps(1000, 10).at(9) == 900);
  BOOST_TEST(ddim_timesteps(1000, 1000).size() == 1000u);
  BOOST_TEST(ddim_timesteps(1000, 250).at(1) == 4);
  BOOST_TEST(ddim_timesteps(1000, 1) == std::vector<int>{0}, boost::test_tools::per_element());
  BOOST_CHECK_THROW(ddim_timesteps(1000, 300), InputError);  // no integer stride gives 300
  BOOST_CHECK_THROW(ddim_timesteps(1000, 0), InputError);
  BOOST_CHECK_THROW(ddim_timesteps(1000, 1001), InputError);
}

BOOST_AUTO_TEST_CASE(ddim_steps_match_numpy) {
  const h5::File f = h5::File::open_read(kGolden);
  const std::vector<int> t = read_int(f, "ddim/t"), t_prev = read_int(f, "ddim/t_prev");
  const std::vector<float> x_t = read_f32(f, "ddim/x_t"), noise = read_f32(f, "ddim/noise");
  const int N = static_cast<int>(t.size());
  const int64_t D = static_cast<int64_t>(x_t.size()) / N;
  for (const char* mean_type : {"eps", "xstart"}) {
    const std::vector<float> out = read_f32(f, cat("ddim/model_out_", mean_type));
    const Diffusion d(make_config("linear", 1000, mean_type, "fixedlarge"));
    for (double eta : {0.0, 0.5, 1.0}) {
      BOOST_TEST_CONTEXT(mean_type << " eta=" << eta) {
        std::vector<float> x_prev(x_t.size());
        kernels().ddim_sample(d.table(), x_prev.data(), nullptr, out.data(), x_t.data(),
                              eta == 0.0 ? nullptr : noise.data(), t.data(), t_prev.data(), N, D, eta);
        std::ostringstream name;
        name << "ddim/" << mean_type << "_eta" << eta;
        check_close(x_prev, read_f32(f, name.str()), 1e-6, 1e-2, name.str());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(ddim_needs_noise_only_where_a_step_adds_some) {
  // The step to x_0 adds no noise whatever η (the sampler's last step passes none); a
  // step to t_prev >= 0 with η > 0 refuses to run without it.
  const int N = 2;
  const int64_t D = 5;
  const std::vector<float> x_t{0.1f, -0.4f, 0.9f, 0.3f, -1.2f, 0.7f, 0.0f, 2.0f, -0.5f, 0.25f};
  const std::vector<float> out{0.3f, 0.2f, -0.1f, 0.6f, -0.9f, 0.4f, 1.1f, -0.2f, 0.05f, -0.7f};
  const std::vector<int> t{3, 40}, to_x0{-1, -1}, to_earlier{2, 20};
  const Diffusion d(make_config("linear", 1000, "eps", "fixedlarge"));
  std::vector<float> deterministic(N * D), noisy_eta(N * D);
  kernels().ddim_sample(d.table(), deterministic.data(), nullptr, out.data(), x_t.data(), nullptr, t.data(),
                        to_x0.data(), N, D, 0.0);
  kernels().ddim_sample(d.table(), noisy_eta.data(), nullptr, out.data(), x_t.data(), nullptr, t.data(),
                        to_x0.data(), N, D, 0.5);
  BOOST_TEST(noisy_eta == deterministic, boost::test_tools::per_element());
  BOOST_CHECK_THROW(kernels().ddim_sample(d.table(), noisy_eta.data(), nullptr, out.data(), x_t.data(), nullptr,
                                          t.data(), to_earlier.data(), N, D, 0.5),
                    Error);
}

BOOST_AUTO_TEST_CASE(ddim_with_eta_one_on_every_step_is_ancestral_sampling) {
  // σ_DDIM(η = 1, t -> t-1) = sqrt(β̃_t) and its mean is μ̃_t(x̂_0, x_t) (Song et al. 2021,
  // sec. 4.1): the same step as Algorithm 2 with σ² = β̃ (fixedsmall), clipping included.
  const h5::File f = h5::File::open_read(kGolden);
  const ProcessInputs in(f);
  const std::vector<float> out = read_f32(f, "process/model_out_eps");
  const Diffusion d(make_config("linear", 1000, "eps", "fixedsmall"));
  std::vector<int> t_prev(in.t);
  for (int& tp : t_prev) tp -= 1;
  std::vector<float> ddim(out.size()), ancestral(out.size());
  kernels().ddim_sample(d.table(), ddim.data(), nullptr, out.data(), in.x_t.data(), in.sample_noise.data(), in.t.data(),
                        t_prev.data(), in.N, in.D, 1.0);
  kernels().p_sample(d.table(), ancestral.data(), nullptr, out.data(), in.x_t.data(), in.sample_noise.data(),
                     in.t.data(), in.N, in.D);
  check_close(ddim, ancestral, 2e-6, 1.0, "DDIM(eta=1) vs p_sample");
}

BOOST_AUTO_TEST_CASE(full_bound_matches_numpy) {
  const h5::File f = h5::File::open_read(kGolden);
  const std::vector<float> x0 = read_f32(f, "bpd/x0"), noise = read_f32(f, "bpd/noise");
  const double beta_start = f.read_attr_f64("bpd", "beta_start"), beta_end = f.read_attr_f64("bpd", "beta_end");
  const int T = 10, N = 3;
  const int64_t D = static_cast<int64_t>(x0.size()) / N;
  // the generator's toy model: out = tanh(x_t) (0.5 + 0.05 t)
  auto model = [&](float* out, const float* x_t, const int* t, int n_examples) {
    for (int n = 0; n < n_examples; ++n)
      for (int64_t i = 0; i < D; ++i)
        out[n * D + i] = static_cast<float>(std::tanh(static_cast<double>(x_t[n * D + i])) * (0.5 + 0.05 * t[n]));
  };
  auto noise_at = [&](float* eps, int t, int n_examples) {
    std::copy_n(noise.begin() + static_cast<int64_t>(t) * n_examples * D, n_examples * D, eps);
  };
  for (const auto& [mean_type, var_type] : {std::pair{"eps", "fixedlarge"}, std::pair{"xstart", "fixedsmall"}}) {
    BOOST_TEST_CONTEXT(mean_type << " " << var_type) {
      const Diffusion d(make_config("linear", T, mean_type, var_type, "kl", beta_start, beta_end));
      const BpdResult r = d.calc_bpd_loop(x0.data(), N, D, model, noise_at);
      const std::string g = cat("bpd/", mean_type, "_", var_type, "/");
      check_close(r.terms_bpd, read_f64(f, g + "terms_bpd"), 1e-6, 1e-12, "terms_bpd");
      check_close(r.mse, read_f64(f, g + "mse"), 1e-6, 1e-12, "mse");
      check_close(r.prior_bpd, read_f64(f, g + "prior_bpd"), 1e-6, 1e-12, "prior_bpd");
      check_close(r.total_bpd, read_f64(f, g + "total_bpd"), 1e-6, 1e-12, "total_bpd");
    }
  }
}

BOOST_AUTO_TEST_CASE(oracle_model_has_only_decoder_and_prior_terms) {
  // An ε-model that returns the noise actually used has x̂_0 = x_0, so with σ² = β̃ every
  // KL term L_{t-1}, t >= 1, vanishes, and the bound is L_0 + L_T.
  const int N = 2, D = 12, T = 1000;
  std::vector<float> x0(N * D);
  for (int i = 0; i < N * D; ++i) x0[i] = static_cast<float>((i * 37 % 256) / 127.5 - 1.0);
  auto noise_at = [&](float* eps, int t, int n_examples) {
    for (int i = 0; i < n_examples * D; ++i) eps[i] = static_cast<float>(std::sin(0.37 * i + 0.011 * t));
  };
  auto oracle = [&](float* out, const float*, const int* t, int n_examples) { noise_at(out, t[0], n_examples); };
  const Diffusion d(make_config("linear", T, "eps", "fixedsmall", "kl"));
  const BpdResult r = d.calc_bpd_loop(x0.data(), N, D, oracle, noise_at);
  for (int n = 0; n < N; ++n) {
    double max_kl = 0.0, sum = 0.0;
    for (int t = 0; t < T; ++t) {
      if (t > 0) max_kl = std::max(max_kl, std::fabs(r.terms_bpd[n * T + t]));
      sum += r.terms_bpd[n * T + t];
    }
    BOOST_TEST(max_kl < 1e-6);
    BOOST_TEST(r.terms_bpd[n * T] > 0.0);  // the decoder's -log p is positive and not tiny
    BOOST_TEST(std::fabs(r.total_bpd[n] - (sum + r.prior_bpd[n])) < 1e-12);
    BOOST_TEST(r.prior_bpd[n] < 1e-4);  // q(x_T | x_0) is nearly N(0, I) for T = 1000
  }
}

BOOST_AUTO_TEST_CASE(oracle_model_with_fixedlarge_pays_the_variance_gap_only) {
  // With the true ε the means agree, so each KL term is the Gaussian KL between σ² = β̃_t
  // and σ² = β_t alone, the same for every element: on the paper's linear schedule
  // Σ_{t>=1} L_t = 0.486419 bits/dim, whatever the data.
  const int N = 2, D = 12, T = 1000;
  auto noise_at = [&](float* eps, int t, int n_examples) {
    for (int i = 0; i < n_examples * D; ++i) eps[i] = static_cast<float>(std::sin(0.37 * i + 0.011 * t));
  };
  auto oracle = [&](float* out, const float*, const int* t, int n_examples) { noise_at(out, t[0], n_examples); };
  const Diffusion d(make_config("linear", T, "eps", "fixedlarge", "kl"));
  for (int data = 0; data < 2; ++data) {
    std::vector<float> x0(N * D);
    for (int i = 0; i < N * D; ++i) x0[i] = static_cast<float>(((i * 37 + data * 101) % 256) / 127.5 - 1.0);
    const BpdResult r = d.calc_bpd_loop(x0.data(), N, D, oracle, noise_at);
    for (int n = 0; n < N; ++n) {
      double kl = 0.0;
      for (int t = 1; t < T; ++t) kl += r.terms_bpd[n * T + t];
      BOOST_TEST(std::fabs(kl - 0.486419) < 1e-6, "data " << data << " image " << n << ": " << kl);
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_configurations_are_input_errors) {
  BOOST_CHECK_THROW(Diffusion(make_config("linear", 1, "eps", "fixedlarge")), InputError);
  BOOST_CHECK_THROW(Diffusion(make_config("sigmoid", 100, "eps", "fixedlarge")), InputError);
  BOOST_CHECK_THROW(Diffusion(make_config("linear", 100, "v", "fixedlarge")), InputError);
}
