// The variational bound (calc_bpd_loop, what `ddpm_eval bpd` runs) with the U-Net on the
// GPU against the CPU, fp32: every term, the prior and x̂₀'s error for the tiny config
// with T = 20, the same weights, images and q-sample noise on both backends.
#define BOOST_TEST_MODULE gpu_bpd
#include "core/config.h"
#include "core/diffusion.h"
#include "core/params.h"
#include "core/rng.h"
#include "core/unet.h"
#include "gpu_test.h"

using namespace ddpm;
using namespace ddpm::gputest;

namespace {

constexpr int kTimesteps = 20, kImages = 3;

BpdResult bound_on(Ops& ops, const Config& cfg, const std::vector<float>& params, const std::vector<float>& x0) {
  const ModelConfig& mc = cfg.model;
  const int64_t img = int64_t{mc.resolution} * mc.resolution * mc.in_channels;
  UNet net(mc);
  ParamBuffer weights(ops, net.layout().size());
  weights.load(params.data());
  const Diffusion diffusion(cfg.diffusion);
  Buffer x(ops, kImages * img), t_dev(ops, kImages), eps(ops, kImages * img);
  net.prepare(ops, kImages, PlanMode::kForwardOnly);
  auto model = [&](float* out, const float* x_t, const int* t, int N) {
    std::vector<float> t_float(t, t + N);
    ops.upload(x.get(), x_t, N * img);
    ops.upload(t_dev.get(), t_float.data(), N);
    Pass ps;
    ps.ops = &ops, ps.params = weights.get(), ps.version = weights.version(), ps.N = N;
    net.forward(ps, eps.get(), x.get(), t_dev.get());
    ops.download(out, eps.get(), N * img);
  };
  auto noise = [&](float* e, int t, int N) {
    for (int i = 0; i < N; ++i) normal_fill(e + i * img, img, 7, Purpose::kBound, 0, static_cast<uint32_t>(t), i);
  };
  return diffusion.calc_bpd_loop(x0.data(), kImages, img, model, noise);
}

std::vector<float> as_floats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

}  // namespace

BOOST_AUTO_TEST_CASE(bound_matches_cpu) {
  Config cfg = load_config(cat(DDPM_SOURCE_DIR, "/configs/tiny.yaml"));
  cfg.diffusion.num_timesteps = kTimesteps;
  const ModelConfig& mc = cfg.model;
  const int64_t img = int64_t{mc.resolution} * mc.resolution * mc.in_channels;
  UNet layout_only(mc);
  HostFloats host = alloc_host_floats(layout_only.layout().size());
  init_params(layout_only.layout(), host.get(), 5);
  std::vector<float> params(host.get(), host.get() + layout_only.layout().size());
  const std::vector<float> noise = random(static_cast<int64_t>(params.size()), 903, 0.05f);
  for (size_t i = 0; i < params.size(); ++i) params[i] += noise[i];  // no zero-initialised layers
  // Images on the 256 levels of the data.
  std::vector<float> x0 = random(kImages * img, 904);
  for (float& v : x0) v = std::round((v + 1) * 127.5f) / 127.5f - 1;

  const BpdResult want = bound_on(cpu(), cfg, params, x0), got = bound_on(gpu("fp32"), cfg, params, x0);
  const struct {
    const char* name;
    const std::vector<double>& got;
    const std::vector<double>& want;
  } arrays[] = {{"total_bpd", got.total_bpd, want.total_bpd},
                {"terms_bpd", got.terms_bpd, want.terms_bpd},
                {"prior_bpd", got.prior_bpd, want.prior_bpd},
                {"mse", got.mse, want.mse}};
  for (const auto& a : arrays) {
    const double err = rel_error(as_floats(a.got), as_floats(a.want));
    BOOST_TEST_MESSAGE(a.name << ": relative error " << err);
    BOOST_TEST_INFO(a.name);
    BOOST_TEST(err <= net_bound("fp32"));
  }
}

DDPM_GPU_TEST_MAIN()
