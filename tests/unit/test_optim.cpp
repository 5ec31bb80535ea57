// The optimizer (Adam + warm-up + global-norm clipping + EMA) replayed against
// torch.optim.Adam (tests/reference/make_optim_reference.py -> golden_optim.h5), and the
// CPU kernels' own properties: a deterministic norm, the nullable EMA, skipped
// non-finite steps.
#define BOOST_TEST_MODULE optim
#include <boost/test/unit_test.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/h5.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"

using namespace ddpm;

namespace {

const std::string kGolden = std::string(DDPM_SOURCE_DIR) + "/tests/reference/golden_optim.h5";

std::vector<float> read_f32(const h5::File& f, const std::string& name) {
  std::vector<float> out(static_cast<size_t>(f.info(name).numel()));
  f.read_f32(name, out.data(), static_cast<int64_t>(out.size()));
  return out;
}

// float64 datasets (norms, learning rates) through HDF5's conversion to double.
std::vector<double> read_f64(const h5::File& f, const std::string& name) {
  h5::Lock lock;
  BOOST_REQUIRE(f.info(name).dtype == h5::DType::kFloat64);
  std::vector<double> out(static_cast<size_t>(f.info(name).numel()));
  h5::Handle ds = f.open_dataset(name);
  BOOST_REQUIRE(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0);
  return out;
}

// Elementwise |a - b| <= rel * max(|b|, 1e-3 * max|b|): relative 1e-6, with a floor for
// entries that cancel to near zero (m after a sign change of the gradient).
void check_close(const float* actual, const float* expected, int64_t n, double rel, const std::string& what) {
  double max_abs = 0.0;
  for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(static_cast<double>(expected[i])));
  const double floor = std::max(1e-3 * max_abs, 1e-30);
  double worst = 0.0;
  int64_t where = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(actual[i]) - expected[i]) /
                       std::max<double>(std::fabs(expected[i]), floor);
    if (!(err <= worst)) {
      worst = err;
      where = i;
    }
  }
  BOOST_TEST_MESSAGE(what << ": worst relative error " << worst);  // --log_level=message
  BOOST_TEST(worst <= rel, what << ": relative error " << worst << " at " << where << " (got " << actual[where]
                                << ", expected " << expected[where] << ")");
}

TrainConfig config_of(const h5::File& f, const std::string& run) {
  TrainConfig c;
  c.lr = f.read_attr_f64(run, "lr");
  c.warmup_steps = static_cast<int>(f.read_attr_f64(run, "warmup"));
  c.grad_clip = f.read_attr_f64(run, "clip");
  c.ema_decay = f.read_attr_f64(run, "decay");
  return c;  // Adam betas and eps keep the paper's defaults, as the generator
}

}  // namespace

BOOST_AUTO_TEST_CASE(replays_torch_adam_with_warmup_clipping_and_ema) {
  const h5::File f = h5::File::open_read(kGolden);
  std::vector<int64_t> checkpoints(static_cast<size_t>(f.info("checkpoints").numel()));
  f.read_i64("checkpoints", checkpoints.data(), static_cast<int64_t>(checkpoints.size()));
  std::unique_ptr<Ops> ops = make_cpu_ops();
  for (const std::string run : {"warmup_clip", "plain"}) {
    BOOST_TEST_CONTEXT(run) {
      const std::vector<float> init = read_f32(f, run + "/init");
      const std::vector<float> grads = read_f32(f, run + "/grads");
      const std::vector<float> states = read_f32(f, run + "/states");  // [checkpoint, param|m|v|ema, n]
      const std::vector<double> norms = read_f64(f, run + "/grad_norm");
      const std::vector<double> lrs = read_f64(f, run + "/lr");
      const double multiplier = f.read_attr_f64(run, "multiplier");
      const int64_t n = static_cast<int64_t>(init.size());
      const int steps = static_cast<int>(norms.size());
      BOOST_REQUIRE_EQUAL(grads.size(), static_cast<size_t>(steps * n));

      Optimizer opt(config_of(f, run));
      std::vector<float> params(init), m(n, 0.0f), v(n, 0.0f), ema(init);
      size_t next_checkpoint = 0;
      int clipped = 0;
      for (int k = 1; k <= steps; ++k) {
        BOOST_TEST_CONTEXT("update " << k) {
          BOOST_TEST(std::fabs(opt.learning_rate(k - 1) - lrs[k - 1]) <= 1e-15 * lrs[k - 1]);
          const double norm = opt.step(*ops, params.data(), grads.data() + (k - 1) * n, m.data(), v.data(),
                                       ema.data(), n, multiplier);
          BOOST_TEST(std::fabs(norm - norms[k - 1]) <= 1e-12 * norms[k - 1]);
          BOOST_TEST(opt.step_count() == k);
          clipped += config_of(f, run).grad_clip > 0 && norm > config_of(f, run).grad_clip;
          if (next_checkpoint < checkpoints.size() && checkpoints[next_checkpoint] == k) {
            const float* s = states.data() + next_checkpoint * 4 * n;
            check_close(params.data(), s, n, 1e-6, "param");
            check_close(m.data(), s + n, n, 1e-6, "m");
            check_close(v.data(), s + 2 * n, n, 1e-6, "v");
            check_close(ema.data(), s + 3 * n, n, 1e-6, "ema");
            ++next_checkpoint;
          }
        }
      }
      BOOST_TEST(next_checkpoint == checkpoints.size());
      if (run == "warmup_clip") BOOST_TEST((clipped > 0 && clipped < steps));  // both regimes exercised
      // the zero gaps between tensors stay zero in every buffer
      for (int64_t i = 0; i < n; ++i) {
        if (init[i] == 0.0f) BOOST_TEST((params[i] == 0.0f && m[i] == 0.0f && v[i] == 0.0f && ema[i] == 0.0f));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(warmup_follows_the_reference_convention) {
  // diffusion_tf/utils.py get_warmed_up_lr: lr * min(global_step / warmup, 1) with
  // global_step = updates completed, so the first update has learning rate 0.
  TrainConfig c;
  c.lr = 2e-4;
  c.warmup_steps = 5000;
  const Optimizer opt(c);
  BOOST_TEST(opt.learning_rate(0) == 0.0);
  BOOST_TEST(opt.learning_rate(2500) == 1e-4);
  BOOST_TEST(opt.learning_rate(5000) == 2e-4);
  BOOST_TEST(opt.learning_rate(800000) == 2e-4);
  c.warmup_steps = 0;
  BOOST_TEST(Optimizer(c).learning_rate(0) == 2e-4);
}

BOOST_AUTO_TEST_CASE(clip_factor_is_tf_clip_by_global_norm) {
  TrainConfig c;
  c.grad_clip = 1.0;
  const Optimizer opt(c);
  BOOST_TEST(opt.next_step(4.0).grad_scale == 0.25);
  BOOST_TEST(opt.next_step(0.5).grad_scale == 1.0);
  BOOST_TEST(opt.next_step(4.0, 0.5).grad_scale == 0.125);  // averaging times clipping
  const AdamStep first = opt.next_step(1.0);
  BOOST_TEST(std::fabs(first.bias_correction1 - 0.1) < 1e-15);
  BOOST_TEST(std::fabs(first.bias_correction2_sqrt - std::sqrt(0.001)) < 1e-15);
  c.grad_clip = 0.0;  // off
  BOOST_TEST(Optimizer(c).next_step(1e6).grad_scale == 1.0);
}

BOOST_AUTO_TEST_CASE(sum_squares_is_exact_enough_and_thread_count_independent) {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  const int64_t n = 3 * (int64_t{1} << 16) + 12345;  // several chunks and a ragged tail
  std::vector<float> x(n);
  normal_fill(x.data(), n, 7, Purpose::kTest, 3, 0, 0);
  long double reference = 0.0L;
  for (float e : x) reference += static_cast<long double>(e) * e;
  const int threads = omp_get_max_threads();
  const double all = ops->sum_squares(x.data(), n);
  omp_set_num_threads(1);
  const double one = ops->sum_squares(x.data(), n);
  omp_set_num_threads(3);
  const double three = ops->sum_squares(x.data(), n);
  omp_set_num_threads(threads);
  BOOST_TEST(std::fabs(all / static_cast<double>(reference) - 1.0) < 1e-13);
  BOOST_TEST(all == one);  // bit for bit
  BOOST_TEST(all == three);
}

BOOST_AUTO_TEST_CASE(ema_is_optional_and_does_not_change_the_update) {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  const int64_t n = 1000;
  std::vector<float> p(n), g(n);
  normal_fill(p.data(), n, 1, Purpose::kTest, 4, 0, 0);
  normal_fill(g.data(), n, 1, Purpose::kTest, 5, 0, 0);
  AdamStep s;
  s.lr = 1e-3;
  s.bias_correction1 = 0.1;
  s.bias_correction2_sqrt = std::sqrt(0.001);
  s.ema_decay = 0.5;
  std::vector<float> p1(p), m1(n, 0.0f), v1(n, 0.0f), ema(p), p2(p), m2(n, 0.0f), v2(n, 0.0f);
  ops->adam_ema_update(p1.data(), m1.data(), v1.data(), ema.data(), g.data(), n, s);
  ops->adam_ema_update(p2.data(), m2.data(), v2.data(), nullptr, g.data(), n, s);
  BOOST_TEST(p1 == p2, boost::test_tools::per_element());
  BOOST_TEST(m1 == m2, boost::test_tools::per_element());
  BOOST_TEST(v1 == v2, boost::test_tools::per_element());
  // the first Adam step moves every weight by lr * sign(g) (up to eps), the EMA half way
  for (int64_t i = 0; i < n; i += 97) {
    BOOST_TEST(std::fabs((p[i] - p1[i]) - 1e-3f * (g[i] > 0 ? 1.0f : -1.0f)) < 1e-6f);
    BOOST_TEST(std::fabs(ema[i] - 0.5f * (p[i] + p1[i])) < 1e-6f);
  }
}

BOOST_AUTO_TEST_CASE(non_finite_gradients_change_nothing) {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  TrainConfig c;
  c.warmup_steps = 0;
  Optimizer opt(c);
  std::vector<float> p{1, 2, 3}, m{0.1f, 0.2f, 0.3f}, v{1, 1, 1}, ema{1, 2, 3}, g{0.5f, NAN, 0.5f};
  const std::vector<float> p0(p), m0(m), v0(v);
  const double norm = opt.step(*ops, p.data(), g.data(), m.data(), v.data(), ema.data(), 3);
  BOOST_TEST(!std::isfinite(norm));
  BOOST_TEST(opt.step_count() == 0);
  BOOST_TEST(p == p0, boost::test_tools::per_element());
  BOOST_TEST(m == m0, boost::test_tools::per_element());
  BOOST_TEST(v == v0, boost::test_tools::per_element());
  g[1] = INFINITY;
  BOOST_TEST(!std::isfinite(opt.step(*ops, p.data(), g.data(), m.data(), v.data(), ema.data(), 3)));
  BOOST_TEST(p == p0, boost::test_tools::per_element());
}
