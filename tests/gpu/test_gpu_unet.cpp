// The whole U-Net on the GPU against the CPU: forward output and every parameter
// gradient, with dropout on (the masks match bit for bit), in each precision, for the
// tiny config and cifar10 at a small batch.
#define BOOST_TEST_MODULE gpu_unet
#include <algorithm>

#include "core/config.h"
#include "core/params.h"
#include "core/unet.h"
#include "gpu_test.h"

using namespace ddpm;
using namespace ddpm::gputest;

namespace {

struct Outcome {
  std::vector<float> eps, grads;
};

// One forward + backward of `cfg` at batch N on `ops` from the given parameters.
Outcome run(Ops& ops, const ModelConfig& cfg, const std::vector<float>& params, int N) {
  UNet net(cfg);
  const int64_t P = net.layout().size();
  const int R = cfg.resolution;
  const int64_t in_n = int64_t{N} * R * R * cfg.in_channels, out_n = int64_t{N} * R * R * cfg.out_ch;
  std::vector<float> t(N);
  for (int i = 0; i < N; ++i) t[i] = static_cast<float>((i * 397 + 11) % 1000);
  Buffer p(ops, params), g(ops, P), x(ops, random(in_n, 900)), tt(ops, t), eps(ops, out_n), d_eps(ops, random(out_n, 901));
  net.prepare(ops, N);
  Pass ps;
  ps.ops = &ops, ps.params = p.get(), ps.grads = g.get(), ps.N = N, ps.training = true;
  ps.dropout = DropoutKey{3, 0, 17, 40};
  net.forward(ps, eps.get(), x.get(), tt.get());
  net.backward(ps, d_eps.get());
  return {eps.host(), g.host()};
}

// The paper's init with the zero-initialised layers (scale 1e-10) given real weights,
// so that every gradient is of a normal size.
std::vector<float> parameters(const ModelConfig& cfg) {
  UNet net(cfg);
  HostFloats host = alloc_host_floats(net.layout().size());
  init_params(net.layout(), host.get(), 5);
  std::vector<float> p(host.get(), host.get() + net.layout().size());
  const std::vector<float> noise = random(net.layout().size(), 902, 0.05f);
  for (const ParamInfo& info : net.layout().params()) {
    for (int64_t i = info.offset; i < info.offset + info.numel; ++i) p[i] += noise[i];
  }
  return p;
}

void compare(const char* config, int N) {
  const ModelConfig cfg = load_config(cat(DDPM_SOURCE_DIR, "/configs/", config)).model;
  const std::vector<float> params = parameters(cfg);
  const Outcome want = run(cpu(), cfg, params, N);
  const UNet layout_only(cfg);
  for (const std::string& prec : precisions()) {
    const Outcome got = run(gpu(prec), cfg, params, N);
    const double bound = net_bound(prec);
    BOOST_TEST_INFO(config << " " << prec << " forward");
    BOOST_TEST(rel_error(got.eps, want.eps) <= bound);
    BOOST_TEST_INFO(config << " " << prec << " all gradients");
    BOOST_TEST(rel_error(got.grads, want.grads) <= bound);
    // Per tensor, with room for the small ones; the worst is named when it fails.
    double worst = 0;
    std::string worst_name;
    for (const ParamInfo& info : layout_only.layout().params()) {
      const std::vector<float> a(got.grads.begin() + info.offset, got.grads.begin() + info.offset + info.numel);
      const std::vector<float> b(want.grads.begin() + info.offset, want.grads.begin() + info.offset + info.numel);
      const double e = rel_error(a, b);
      if (e > worst) worst = e, worst_name = info.name;
    }
    BOOST_TEST_INFO(config << " " << prec << " worst tensor " << worst_name);
    BOOST_TEST(worst <= 5 * bound);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiny_unet_forward_and_backward_match_cpu) { compare("tiny.yaml", 3); }

BOOST_AUTO_TEST_CASE(cifar10_unet_forward_and_backward_match_cpu) { compare("cifar10.yaml", 2); }

DDPM_GPU_TEST_MAIN()
