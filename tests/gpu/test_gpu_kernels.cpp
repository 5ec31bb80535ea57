// The CUDA backend's own kernels against the CPU backend: elementwise and data
// movement, dropout masks (bit for bit), the timestep embedding, the optimizer (Adam +
// EMA bit for bit, a deterministic norm), the diffusion methods and the noise
// (Philox / Box-Muller as core/rng.h), and graph capture and replay.
#define BOOST_TEST_MODULE gpu_kernels
#include <algorithm>
#include <cstring>

#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "gpu_test.h"

using namespace ddpm;
using namespace ddpm::gputest;

BOOST_AUTO_TEST_CASE(swish_and_data_movement_match_cpu) {
  Ops& g = gpu();
  const int N = 3, H = 16, W = 16, C = 256, Cb = 128;
  const int64_t n = int64_t{N} * H * W * C, M = int64_t{N} * H * W;
  Pair x(g, random(n, 1, 4.0f)), dy(g, random(n, 2)), y(g, n), b(g, random(M * Cb, 3));

  cpu().swish_forward(y.cpu.get(), x.cpu.get(), n);
  g.swish_forward(y.gpu.get(), x.gpu.get(), n);
  BOOST_TEST(rel_error(y.gpu.host(), y.cpu.host()) <= 2e-6);  // two exp implementations of ~2 ulp
  cpu().swish_backward(y.cpu.get(), dy.cpu.get(), x.cpu.get(), n);
  g.swish_backward(y.gpu.get(), dy.gpu.get(), x.gpu.get(), n);
  BOOST_TEST(rel_error(y.gpu.host(), y.cpu.host()) <= 2e-6);

  // Pure data movement is exact.
  Pair cat(g, M * (C + Cb)), da(g, n), db(g, M * Cb);
  cpu().concat_channels(cat.cpu.get(), x.cpu.get(), b.cpu.get(), M, C, Cb);
  g.concat_channels(cat.gpu.get(), x.gpu.get(), b.gpu.get(), M, C, Cb);
  BOOST_TEST(cat.gpu.host() == cat.cpu.host());
  cpu().split_channels(da.cpu.get(), db.cpu.get(), cat.cpu.get(), M, C, Cb);
  g.split_channels(da.gpu.get(), db.gpu.get(), cat.gpu.get(), M, C, Cb);
  BOOST_TEST(da.gpu.host() == x.cpu.host());
  BOOST_TEST(db.gpu.host() == b.cpu.host());

  Pair up(g, 4 * n), pooled(g, n / 4), back(g, random(n, 4));
  cpu().upsample2x_forward(up.cpu.get(), x.cpu.get(), N, H, W, C);
  g.upsample2x_forward(up.gpu.get(), x.gpu.get(), N, H, W, C);
  BOOST_TEST(up.gpu.host() == up.cpu.host());
  cpu().upsample2x_backward(back.cpu.get(), up.cpu.get(), N, H, W, C);
  g.upsample2x_backward(back.gpu.get(), up.gpu.get(), N, H, W, C);
  BOOST_TEST(back.gpu.host() == back.cpu.host());  // the same (a0 + a1) + (b0 + b1) order
  cpu().avgpool2x_forward(pooled.cpu.get(), x.cpu.get(), N, H, W, C);
  g.avgpool2x_forward(pooled.gpu.get(), x.gpu.get(), N, H, W, C);
  BOOST_TEST(pooled.gpu.host() == pooled.cpu.host());
  for (bool acc : {false, true}) {
    cpu().avgpool2x_backward(back.cpu.get(), acc, pooled.cpu.get(), N, H, W, C);
    g.avgpool2x_backward(back.gpu.get(), acc, pooled.gpu.get(), N, H, W, C);
    BOOST_TEST(back.gpu.host() == back.cpu.host());
  }

  cpu().add_inplace(y.cpu.get(), x.cpu.get(), n);
  g.add_inplace(y.gpu.get(), x.gpu.get(), n);
  BOOST_TEST(y.gpu.host() == y.cpu.host());
  cpu().copy(y.cpu.get(), dy.cpu.get(), n);
  g.copy(y.gpu.get(), dy.gpu.get(), n);
  BOOST_TEST(y.gpu.host() == y.cpu.host());

  Pair nchw(g, n), nhwc(g, n);
  cpu().nhwc_to_nchw(nchw.cpu.get(), x.cpu.get(), N, C, H, W);
  g.nhwc_to_nchw(nchw.gpu.get(), x.gpu.get(), N, C, H, W);
  BOOST_TEST(nchw.gpu.host() == nchw.cpu.host());
  g.nchw_to_nhwc(nhwc.gpu.get(), nchw.gpu.get(), N, C, H, W);
  BOOST_TEST(nhwc.gpu.host() == x.cpu.host());

  Buffer z(g, random(1000, 5));
  g.zero(z.get(), 1000);
  BOOST_TEST(count_different(z.host(), std::vector<float>(1000, 0.0f)) == 0u);
}

BOOST_AUTO_TEST_CASE(channel_bias_and_its_gradient_match_cpu) {
  Ops& g = gpu();
  struct Shape {
    int N, HW, C;
  };
  for (const Shape s : {Shape{4, 1024, 128}, Shape{2, 64, 512}, Shape{1, 65536, 128}}) {
    const int64_t n = int64_t{s.N} * s.HW * s.C;
    Pair x(g, random(n, 10)), bias(g, random(int64_t{s.N} * s.C, 11)), sums(g, int64_t{s.N} * s.C);
    cpu().add_channel_bias(x.cpu.get(), bias.cpu.get(), s.N, s.HW, s.C);
    g.add_channel_bias(x.gpu.get(), bias.gpu.get(), s.N, s.HW, s.C);
    BOOST_TEST(x.gpu.host() == x.cpu.host());
    cpu().sum_over_hw(sums.cpu.get(), x.cpu.get(), s.N, s.HW, s.C);
    g.sum_over_hw(sums.gpu.get(), x.gpu.get(), s.N, s.HW, s.C);
    BOOST_TEST_INFO("sum_over_hw " << s.N << "x" << s.HW << "x" << s.C);
    BOOST_TEST(rel_error(sums.gpu.host(), sums.cpu.host()) <= kSumBound);
  }
}

BOOST_AUTO_TEST_CASE(dropout_masks_are_bit_identical_to_the_cpu) {
  Ops& g = gpu();
  // per_example not a multiple of 4; keys with high seed bits and nonzero example bases.
  const int N = 5;
  const int64_t per_example = 16 * 16 * 256 + 3;
  const DropoutKey keys[] = {{0, 0, 0, 0}, {0x123456789ABCDEFull, 7, 1234, 96}, {42, 35, 800000, 4096}};
  for (const DropoutKey& key : keys) {
    for (float p : {0.1f, 0.5f}) {
      Pair x(g, random(N * per_example, 20));
      cpu().dropout_apply(x.cpu.get(), p, key, N, per_example);
      g.dropout_apply(x.gpu.get(), p, key, N, per_example);
      BOOST_TEST_INFO("seed " << key.seed << " layer " << key.layer << " p " << p);
      BOOST_TEST(count_different(x.gpu.host(), x.cpu.host()) == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(timestep_embedding_matches_cpu) {
  Ops& g = gpu();
  const int N = 256;
  std::vector<float> t(N);
  for (int i = 0; i < N; ++i) t[i] = static_cast<float>((i * 997) % 1000);
  for (int dim : {128, 192, 33}) {
    Pair tt(g, t), out(g, int64_t{N} * dim);
    cpu().timestep_embedding(out.cpu.get(), tt.cpu.get(), N, dim);
    g.timestep_embedding(out.gpu.get(), tt.gpu.get(), N, dim);
    const std::vector<float> a = out.gpu.host(), b = out.cpu.host();
    float worst = 0;  // sin/cos of arguments up to ~1000: absolute error ~ ulp(1000)
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    BOOST_TEST_INFO("dim " << dim);
    BOOST_TEST(worst <= 5e-4f);
  }
}

BOOST_AUTO_TEST_CASE(adam_ema_update_is_bit_identical_to_the_cpu) {
  Ops& g = gpu();
  const int64_t n = 1000003;
  AdamStep s;
  s.lr = 2e-4, s.bias_correction1 = 1 - std::pow(0.9, 3), s.bias_correction2_sqrt = std::sqrt(1 - std::pow(0.999, 3));
  s.grad_scale = 0.37, s.ema_decay = 0.9999;
  for (bool with_ema : {true, false}) {
    Pair p(g, random(n, 30)), m(g, random(n, 31, 0.01f)), v(g, random(n, 32, 0.001f)), ema(g, random(n, 33)),
        grad(g, random(n, 34, 3.0f));
    std::vector<float> vh = v.cpu.host();  // v must be >= 0
    for (float& x : vh) x = std::fabs(x);
    cpu().upload(v.cpu.get(), vh.data(), n);
    g.upload(v.gpu.get(), vh.data(), n);
    for (int step = 0; step < 3; ++step) {
      cpu().adam_ema_update(p.cpu.get(), m.cpu.get(), v.cpu.get(), with_ema ? ema.cpu.get() : nullptr, grad.cpu.get(),
                            n, s);
      g.adam_ema_update(p.gpu.get(), m.gpu.get(), v.gpu.get(), with_ema ? ema.gpu.get() : nullptr, grad.gpu.get(), n,
                        s);
    }
    BOOST_TEST_INFO("with ema " << with_ema);
    BOOST_TEST(count_different(p.gpu.host(), p.cpu.host()) == 0u);
    BOOST_TEST(count_different(m.gpu.host(), m.cpu.host()) == 0u);
    BOOST_TEST(count_different(v.gpu.host(), v.cpu.host()) == 0u);
    BOOST_TEST(count_different(ema.gpu.host(), ema.cpu.host()) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(sum_squares_is_accurate_and_deterministic) {
  Ops& g = gpu();
  for (int64_t n : {int64_t{1}, int64_t{65537}, int64_t{35746307}}) {  // up to the cifar10 parameter count
    Pair x(g, random(n, 40));
    const double want = cpu().sum_squares(x.cpu.get(), n);
    const double got = g.sum_squares(x.gpu.get(), n);
    BOOST_TEST_INFO("n " << n);
    BOOST_TEST(std::fabs(got - want) <= 1e-12 * want);
    BOOST_TEST(g.sum_squares(x.gpu.get(), n) == got);  // the same bits every time
  }
}

BOOST_AUTO_TEST_CASE(fill_normal_draws_the_host_numbers) {
  Ops& g = gpu();
  const int N = 6;
  const int64_t per_example = 3 * 32 * 32 + 2;
  Buffer out(g, N * per_example);
  g.diffusion().fill_normal(out.get(), N, per_example, 0xDEADBEEFull, Purpose::kNoise, 5, 777, 1000);
  std::vector<float> want(static_cast<size_t>(N * per_example));
  for (int n = 0; n < N; ++n) {
    normal_fill(want.data() + n * per_example, per_example, 0xDEADBEEFull, Purpose::kNoise, 5, 777, 1000 + n);
  }
  const std::vector<float> got = out.host();
  // Double log/sin/cos may differ in their last bit between the device and glibc; after
  // rounding to float that very rarely shows.
  float worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  BOOST_TEST(worst <= 1e-6f);
  BOOST_TEST(count_different(got, want) <= got.size() / 1000);
}

namespace {

DiffusionConfig diffusion_config(const char* mean, const char* var, const char* loss) {
  DiffusionConfig c;
  c.model_mean_type = mean, c.model_var_type = var, c.loss_type = loss;
  return c;
}

// Differences between the GPU and the host formula: both evaluate the same double
// expressions without contraction, so outputs agree up to a rare last-bit flip.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  size_t worse = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::fabs(got[i] - want[i]) > 2e-7f * std::max(1.0f, std::fabs(want[i]))) ++worse;
  }
  BOOST_TEST_INFO(what);
  BOOST_TEST(worse == 0u);
  BOOST_TEST(count_different(got, want) <= got.size() / 1000);
}

}  // namespace

BOOST_AUTO_TEST_CASE(diffusion_methods_match_the_host_process) {
  Ops& g = gpu();
  DiffusionOps &on_gpu = g.diffusion(), &on_cpu = cpu().diffusion();
  const int N = 8;
  const int64_t D = 3 * 32 * 32;
  const std::vector<int> t{0, 1, 2, 10, 500, 998, 999, 250};
  const std::vector<int> t_prev{-1, 0, 0, 5, 480, 978, 979, -1};
  for (const char* mean : {"eps", "xstart", "xprev"}) {
    for (const char* var : {"fixedlarge", "fixedsmall"}) {
      const Diffusion d(diffusion_config(mean, var, "mse"));
      const DiffusionTable& tb = d.table();
      Pair x0(g, random(N * D, 50)), noise(g, random(N * D, 51)), out(g, random(N * D, 52, 1.5f));
      Pair xt(g, N * D), prev(g, N * D), pred(g, N * D), grad(g, N * D);
      on_cpu.q_sample(tb, xt.cpu.get(), x0.cpu.get(), noise.cpu.get(), t.data(), N, D);
      on_gpu.q_sample(tb, xt.gpu.get(), x0.gpu.get(), noise.gpu.get(), t.data(), N, D);
      expect_close(xt.gpu.host(), xt.cpu.host(), "q_sample");

      on_cpu.p_sample(tb, prev.cpu.get(), pred.cpu.get(), out.cpu.get(), xt.cpu.get(), noise.cpu.get(), t.data(), N,
                      D);
      on_gpu.p_sample(tb, prev.gpu.get(), pred.gpu.get(), out.gpu.get(), xt.gpu.get(), noise.gpu.get(), t.data(), N,
                      D);
      expect_close(prev.gpu.host(), prev.cpu.host(), "p_sample x_prev");
      expect_close(pred.gpu.host(), pred.cpu.host(), "p_sample pred_xstart");

      for (double eta : {0.0, 1.0}) {
        on_cpu.ddim_sample(tb, prev.cpu.get(), pred.cpu.get(), out.cpu.get(), xt.cpu.get(), noise.cpu.get(),
                           t.data(), t_prev.data(), N, D, eta);
        on_gpu.ddim_sample(tb, prev.gpu.get(), pred.gpu.get(), out.gpu.get(), xt.gpu.get(), noise.gpu.get(),
                           t.data(), t_prev.data(), N, D, eta);
        expect_close(prev.gpu.host(), prev.cpu.host(), "ddim x_prev");
        expect_close(pred.gpu.host(), pred.cpu.host(), "ddim pred_xstart");
      }

      std::vector<double> loss_c(N), loss_g(N);
      on_cpu.training_losses(tb, loss_c.data(), grad.cpu.get(), out.cpu.get(), x0.cpu.get(), xt.cpu.get(),
                             noise.cpu.get(), t.data(), N, D, 1.0 / N);
      on_gpu.training_losses(tb, loss_g.data(), grad.gpu.get(), out.gpu.get(), x0.gpu.get(), xt.gpu.get(),
                             noise.gpu.get(), t.data(), N, D, 1.0 / N);
      for (int n = 0; n < N; ++n) BOOST_TEST(std::fabs(loss_g[n] - loss_c[n]) <= 1e-12 * loss_c[n]);
      expect_close(grad.gpu.host(), grad.cpu.host(), "mse gradient");
    }
  }
  // kl runs the host path through copies: the same numbers.
  const Diffusion kl(diffusion_config("eps", "fixedsmall", "kl"));
  Pair x0(g, random(N * D, 60)), xt(g, random(N * D, 61)), out(g, random(N * D, 62)), grad(g, N * D);
  std::vector<double> loss_c(N), loss_g(N);
  on_cpu.training_losses(kl.table(), loss_c.data(), grad.cpu.get(), out.cpu.get(), x0.cpu.get(), xt.cpu.get(),
                         nullptr, t.data(), N, D, 0.5);
  on_gpu.training_losses(kl.table(), loss_g.data(), grad.gpu.get(), out.gpu.get(), x0.gpu.get(), xt.gpu.get(),
                         nullptr, t.data(), N, D, 0.5);
  BOOST_TEST(loss_g == loss_c);
  BOOST_TEST(grad.gpu.host() == grad.cpu.host());
}

BOOST_AUTO_TEST_CASE(images_to_model_is_exact) {
  Ops& g = gpu();
  std::vector<uint8_t> pixels(3 * 32 * 32 * 5 + 1);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37) % 256);
  const int64_t n = static_cast<int64_t>(pixels.size());
  Pair out(g, n);
  cpu().diffusion().images_to_model(out.cpu.get(), pixels.data(), n);
  g.diffusion().images_to_model(out.gpu.get(), pixels.data(), n);
  BOOST_TEST(out.gpu.host() == out.cpu.host());
}

BOOST_AUTO_TEST_CASE(run_graph_replays_the_recorded_work_on_new_inputs) {
  Ops& g = gpu();
  const int64_t M = 512;
  const int C = 64, O = 96;
  Buffer in(g, M * C), w(g, random(int64_t{O} * C, 70, 0.1f)), b(g, random(O, 71)), hidden(g, M * O), out(g, M * O);
  auto work = [&] {
    g.linear_forward(hidden.get(), false, in.get(), w.get(), b.get(), M, C, O);
    g.swish_forward(out.get(), hidden.get(), M * O);
  };
  for (int call = 0; call < 4; ++call) {  // warm-up, capture, then replays
    const std::vector<float> x = random(M * C, 80 + call);
    g.upload(in.get(), x.data(), M * C);
    g.run_graph(1, work);
    const std::vector<float> replayed = out.host();
    work();  // the same work run directly
    BOOST_TEST_INFO("call " << call);
    BOOST_TEST(out.host() == replayed);
  }
  g.drop_graphs();
}

DDPM_GPU_TEST_MAIN()
