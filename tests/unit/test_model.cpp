// The U-Net's structure (parameter counts of the paper, names and shapes of the
// pytorch_diffusion port), its initialisation, and per-example independence.
#define BOOST_TEST_MODULE model
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <memory>

#include "core/buffer.h"
#include "core/common.h"
#include "core/config.h"
#include "core/diffusion.h"
#include "core/sampler.h"
#include "core/cpu/cpu_ops.h"
#include "core/unet.h"
#include "gradcheck.h"
#include "reference_ops.h"

using namespace ddpm;

namespace {
ModelConfig shipped(const std::string& name) {
  return load_config(std::string(DDPM_SOURCE_DIR) + "/configs/" + name + ".yaml").model;
}
}  // namespace

BOOST_AUTO_TEST_CASE(parameter_counts_are_the_papers) {
  const UNet cifar(shipped("cifar10"));
  BOOST_TEST(cifar.layout().num_parameters() == 35746307);
  BOOST_TEST(cifar.layout().params().size() == 328u);
  for (const char* name : {"celebahq256", "lsun_church256", "lsun_bedroom256", "lsun_cat256"}) {
    BOOST_TEST_CONTEXT(name) {
      const UNet net(shipped(name));
      BOOST_TEST(net.layout().num_parameters() == 113673219);
      BOOST_TEST(net.layout().params().size() == 450u);
    }
  }
  const UNet large(shipped("lsun_bedroom256_large"));  // "about 256M" in the paper
  BOOST_TEST(std::abs(large.layout().num_parameters() - 256e6) < 1e6);
}

BOOST_AUTO_TEST_CASE(names_and_shapes_follow_pytorch_diffusion) {
  const UNet net(shipped("cifar10"));
  const ParamLayout& L = net.layout();
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"temb.dense.0.weight", {512, 128}},
      {"temb.dense.1.bias", {512}},
      {"conv_in.weight", {128, 3, 3, 3}},
      {"down.0.block.0.norm1.weight", {128}},
      {"down.0.block.1.conv2.weight", {128, 128, 3, 3}},
      {"down.0.downsample.conv.weight", {128, 128, 3, 3}},
      {"down.1.block.0.nin_shortcut.weight", {256, 128, 1, 1}},
      {"down.1.attn.1.q.weight", {256, 256, 1, 1}},
      {"down.1.block.0.temb_proj.weight", {256, 512}},
      {"mid.block_1.conv1.weight", {256, 256, 3, 3}},
      {"mid.attn_1.proj_out.bias", {256}},
      {"up.0.block.0.conv1.weight", {128, 384, 3, 3}},
      {"up.0.block.2.nin_shortcut.weight", {128, 256, 1, 1}},
      {"up.1.attn.2.norm.bias", {256}},
      {"up.3.upsample.conv.weight", {256, 256, 3, 3}},
      {"norm_out.weight", {128}},
      {"conv_out.weight", {3, 128, 3, 3}},
  };
  for (const auto& [name, shape] : expected) {
    BOOST_TEST_CONTEXT(name) {
      const ParamInfo* p = L.find(name);
      BOOST_TEST_REQUIRE(p != nullptr);
      BOOST_TEST(p->shape == shape);
    }
  }
  BOOST_TEST(L.find("up.0.upsample.conv.weight") == nullptr);  // level 0 does not upsample
  BOOST_TEST(L.find("down.3.downsample.conv.weight") == nullptr);
  // Forward-execution order (backward finishes gradients from the end of the buffer).
  BOOST_TEST(L.params().front().name == "temb.dense.0.weight");
  BOOST_TEST(L.params().back().name == "conv_out.bias");
  BOOST_TEST(L.at("up.3.block.0.conv1.weight").offset < L.at("up.0.block.0.conv1.weight").offset);
  BOOST_TEST(L.at("down.1.block.0.conv2.weight").offset < L.at("down.1.attn.0.q.weight").offset);
  BOOST_TEST(L.at("down.1.attn.0.q.weight").offset < L.at("down.1.block.1.conv1.weight").offset);
  for (const ParamInfo& p : L.params()) BOOST_TEST(p.offset % ParamLayout::kParamAlign == 0);
  // Views by name see the same floats as the flat buffer.
  HostFloats buffer = alloc_host_floats(L.size());
  const TensorView v = L.view(buffer.get(), "mid.attn_1.q.weight");
  BOOST_TEST((*v.shape == std::vector<int64_t>{256, 256, 1, 1}));
  BOOST_TEST(v.numel == 65536);
  v[3] = 7.0f;
  BOOST_TEST(buffer[L.at("mid.attn_1.q.weight").offset + 3] == 7.0f);
}

BOOST_AUTO_TEST_CASE(initialisation_follows_the_reference) {
  const UNet net(shipped("cifar10"));
  const ParamLayout& L = net.layout();
  HostFloats a = alloc_host_floats(L.size()), b = alloc_host_floats(L.size()), c = alloc_host_floats(L.size());
  init_params(L, a.get(), 1);
  init_params(L, b.get(), 1);
  init_params(L, c.get(), 2);
  BOOST_TEST(std::equal(a.get(), a.get() + L.size(), b.get()));
  BOOST_TEST(!std::equal(a.get(), a.get() + L.size(), c.get()));
  for (const ParamInfo& p : L.params()) {
    const float* w = a.get() + p.offset;
    double mx = 0, s2 = 0;
    for (int64_t i = 0; i < p.numel; ++i) {
      mx = std::max(mx, std::fabs(static_cast<double>(w[i])));
      s2 += double(w[i]) * w[i];
    }
    BOOST_TEST_CONTEXT(p.name) {
      switch (p.init) {
        case InitKind::kBias:
        case InitKind::kNormBias:
          BOOST_TEST(mx == 0.0);
          break;
        case InitKind::kNormWeight:
          BOOST_TEST((w[0] == 1.0f && w[p.numel - 1] == 1.0f));
          break;
        case InitKind::kWeight: {
          // U(-limit, limit): max close to the limit, std = limit / sqrt(3)
          const double limit = fan_avg_uniform_limit(p.shape, 1.0);
          BOOST_TEST(mx <= static_cast<float>(limit));
          BOOST_TEST(mx > 0.9 * limit);
          BOOST_TEST(std::sqrt(s2 / p.numel) == limit / std::sqrt(3.0), boost::test_tools::tolerance(0.1));
          break;
        }
        case InitKind::kZeroWeight:
          BOOST_TEST(mx <= static_cast<float>(fan_avg_uniform_limit(p.shape, 1e-10)));
          BOOST_TEST(mx > 0.0);
          break;
      }
    }
  }
  // The layers that end a residual branch start near zero (DESIGN: scale 1e-10).
  for (const char* name : {"down.0.block.0.conv2.weight", "mid.attn_1.proj_out.weight", "conv_out.weight"}) {
    BOOST_TEST((L.at(name).init == InitKind::kZeroWeight));
  }
}

BOOST_AUTO_TEST_CASE(examples_do_not_interact) {
  // GroupNorm and attention are per example: a batch of 3 gives each image the output
  // it gets alone, and the result is deterministic.
  ModelConfig cfg = shipped("tiny");
  auto ops = make_cpu_ops();  // outlives the model (UNet::prepare)
  UNet net(cfg);
  HostFloats params = alloc_host_floats(net.layout().size());
  init_params(net.layout(), params.get(), 3);
  // Give the zero-initialised layers real weights so that every path contributes.
  for (const ParamInfo& p : net.layout().params()) {
    if (p.init != InitKind::kZeroWeight) continue;
    auto v = test::random_vector(p.numel, static_cast<uint32_t>(p.offset), 0.05f);
    std::copy(v.begin(), v.end(), params.get() + p.offset);
  }
  const int R = cfg.resolution, C = cfg.in_channels;
  const int64_t img = int64_t{R} * R * C;
  auto x = test::random_vector(3 * img, 9);
  const std::vector<float> t{5.0f, 500.0f, 999.0f};
  Pass ps;
  ps.ops = ops.get(), ps.params = params.get();
  std::vector<float> batch_out(3 * img), again(3 * img), single(img);
  net.prepare(*ops, 3);
  ps.N = 3;
  net.forward(ps, batch_out.data(), x.data(), t.data());
  net.forward(ps, again.data(), x.data(), t.data());
  BOOST_TEST(batch_out == again);
  net.prepare(*ops, 1);
  ps.N = 1;
  for (int n = 0; n < 3; ++n) {
    net.forward(ps, single.data(), x.data() + n * img, &t[n]);
    double d = 0, s = 0;
    for (int64_t i = 0; i < img; ++i) {
      d += std::pow(single[i] - batch_out[n * img + i], 2);
      s += std::pow(single[i], 2);
    }
    BOOST_TEST(s > 0);
    BOOST_TEST(std::sqrt(d / s) < 1e-5);
  }
}

BOOST_AUTO_TEST_CASE(backward_reports_final_gradients_from_the_end_of_the_buffer) {
  // What the bucketed all-reduce relies on: each reported offset only decreases, the
  // last is 0, and every gradient at or after it has its final value already.
  ModelConfig cfg = shipped("tiny");
  auto ops = make_cpu_ops();
  UNet net(cfg);
  const int64_t P = net.layout().size();
  HostFloats params = alloc_host_floats(P), grads = alloc_host_floats(P);
  init_params(net.layout(), params.get(), 4);
  const int N = 2, R = cfg.resolution;
  auto x = test::random_vector(int64_t{N} * R * R * cfg.in_channels, 5);
  auto d = test::random_vector(int64_t{N} * R * R * cfg.out_ch, 6);
  const std::vector<float> t{3.0f, 600.0f};
  std::vector<float> eps(d.size());
  net.prepare(*ops, N);
  Pass ps;
  ps.ops = ops.get(), ps.params = params.get(), ps.grads = grads.get(), ps.N = N, ps.training = true;
  net.forward(ps, eps.data(), x.data(), t.data());
  std::vector<std::pair<int64_t, std::vector<float>>> reports;
  net.backward(ps, d.data(), [&](int64_t from) {
    reports.emplace_back(from, std::vector<float>(grads.get() + from, grads.get() + P));
  });
  BOOST_TEST_REQUIRE(reports.size() > 10u);
  BOOST_TEST(reports.back().first == 0);
  for (size_t i = 0; i < reports.size(); ++i) {
    if (i > 0) BOOST_TEST(reports[i].first <= reports[i - 1].first);
    BOOST_TEST(std::equal(reports[i].second.begin(), reports[i].second.end(), grads.get() + reports[i].first));
  }
}

BOOST_AUTO_TEST_CASE(recompute_gives_the_same_bits_in_less_memory) {
  // train.recompute: each residual block's inner activations are recomputed in backward
  // (dropout masks included, they are keyed) instead of kept, so eps and every
  // gradient are bit for bit those of the plain plan, from a smaller arena.
  ModelConfig cfg = shipped("tiny");
  cfg.dropout = 0.2f;
  auto ops = make_cpu_ops();
  UNet net(cfg);
  const int64_t P = net.layout().size();
  HostFloats params = alloc_host_floats(P);
  init_params(net.layout(), params.get(), 7);
  for (const ParamInfo& p : net.layout().params()) {
    if (p.init != InitKind::kZeroWeight) continue;
    auto v = test::random_vector(p.numel, static_cast<uint32_t>(p.offset), 0.05f);
    std::copy(v.begin(), v.end(), params.get() + p.offset);
  }
  const int N = 2, R = cfg.resolution;
  auto x = test::random_vector(int64_t{N} * R * R * cfg.in_channels, 11);
  auto d = test::random_vector(int64_t{N} * R * R * cfg.out_ch, 12);
  const std::vector<float> t{40.0f, 700.0f};
  struct Result {
    std::vector<float> eps, grads;
    int64_t arena_floats;
  };
  auto run = [&](PlanMode mode) {
    HostFloats grads = alloc_host_floats(P);
    std::fill(grads.get(), grads.get() + P, 0.0f);
    Result r{std::vector<float>(d.size()), {}, 0};
    net.prepare(*ops, N, mode);
    Pass ps;
    ps.ops = ops.get(), ps.params = params.get(), ps.grads = grads.get(), ps.N = N, ps.training = true;
    ps.dropout = DropoutKey{5, 0, 3, 0};
    net.forward(ps, r.eps.data(), x.data(), t.data());
    net.backward(ps, d.data());
    r.grads.assign(grads.get(), grads.get() + P);
    r.arena_floats = net.activation_floats();
    return r;
  };
  const Result kept = run(PlanMode::kTraining), recomputed = run(PlanMode::kTrainingRecompute);
  BOOST_TEST(recomputed.eps == kept.eps);
  BOOST_TEST(recomputed.grads == kept.grads);
  BOOST_TEST(std::any_of(kept.grads.begin(), kept.grads.end(), [](float g) { return g != 0.0f; }));
  BOOST_TEST(recomputed.arena_floats < kept.arena_floats);
  BOOST_TEST_MESSAGE("tiny config, batch 2: arena " << kept.arena_floats << " floats kept, "
                                                    << recomputed.arena_floats << " with recompute");
}

namespace {

// The tiny model with initial weights, a T-step process and an ancestral sampler.
struct TinySampler {
  TinySampler(int T, const SamplerOptions& options, uint64_t weight_seed)
      : cfg(shipped("tiny")), ops(make_cpu_ops()), net(cfg), diffusion(config_with_steps(T)),
        sampler(net, *ops, diffusion, options), weights(*ops, net.layout().size()),
        img(int64_t{cfg.resolution} * cfg.resolution * cfg.in_channels) {
    HostFloats host = alloc_host_floats(net.layout().size());
    init_params(net.layout(), host.get(), weight_seed);
    weights.load(host.get());
  }
  static DiffusionConfig config_with_steps(int T) {
    DiffusionConfig dc;
    dc.num_timesteps = T;
    return dc;
  }
  ModelConfig cfg;
  std::unique_ptr<Ops> ops;
  UNet net;
  Diffusion diffusion;
  Sampler sampler;
  ParamBuffer weights;
  int64_t img;
};

}  // namespace

BOOST_AUTO_TEST_CASE(progressive_snapshots_keep_t_multiple_of_k_down_to_the_sample) {
  // The reference keeps x̂₀ at t ≡ 0 (mod K) during ancestral sampling; the last
  // snapshot (t = 0) is the final sample itself (at t = 0 the posterior mean is x̂₀).
  SamplerOptions so;
  so.progressive_every = 10;
  so.seed = 3;
  TinySampler tiny(100, so, 5);
  Sampler& sampler = tiny.sampler;
  const std::vector<int> want{90, 80, 70, 60, 50, 40, 30, 20, 10, 0};
  BOOST_TEST(sampler.snapshot_timesteps() == want);
  BOOST_TEST(sampler.num_snapshots() == 10);
  const ParamBuffer& weights = tiny.weights;
  const int n = 2;
  const int64_t img = tiny.img;
  std::vector<float> out(n * img), snaps;
  sampler.sample(weights, 0, n, out.data(), &snaps);
  BOOST_TEST_REQUIRE(snaps.size() == static_cast<size_t>(10 * n * img));
  const std::vector<float> last(snaps.end() - n * img, snaps.end()), first(snaps.begin(), snaps.begin() + n * img);
  BOOST_TEST(test::rel_error(last, std::vector<double>(out.begin(), out.end())) < 1e-6);
  BOOST_TEST(test::rel_error(first, std::vector<double>(out.begin(), out.end())) > 1e-3);  // t = 90: far from it
}

BOOST_AUTO_TEST_CASE(ddim_with_noise_runs_to_the_end) {
  // η > 0 adds noise on every step but the last (to x_0), which gets none.
  SamplerOptions so;
  so.kind = "ddim", so.steps = 5, so.seed = 4;
  TinySampler deterministic(50, so, 7);
  so.eta = 0.5;
  TinySampler noisy(50, so, 7);
  const int n = 2;
  std::vector<float> a(n * deterministic.img), b(n * noisy.img);
  deterministic.sampler.sample(deterministic.weights, 0, n, a.data(), nullptr);
  noisy.sampler.sample(noisy.weights, 0, n, b.data(), nullptr);
  for (float v : b) BOOST_REQUIRE(std::isfinite(v));
  BOOST_TEST(test::rel_error(b, std::vector<double>(a.begin(), a.end())) > 1e-3);
}

BOOST_AUTO_TEST_CASE(denoising_with_shared_noise_treats_equal_items_alike) {
  // Interpolation's decoder: every item of the batch gets the same reverse noise, so
  // two equal latents decode to the same image, in any batch and alone.
  SamplerOptions so;
  so.seed = 9;
  TinySampler tiny(50, so, 6);
  Sampler& sampler = tiny.sampler;
  const ParamBuffer& weights = tiny.weights;
  const int64_t img = tiny.img;
  const std::vector<float> a = test::random_vector(img, 21), b = test::random_vector(img, 22);
  std::vector<float> batch;  // a, b, a
  for (const auto* v : {&a, &b, &a}) batch.insert(batch.end(), v->begin(), v->end());
  std::vector<float> alone(a);
  sampler.denoise_shared_noise(weights, 30, 4, 3, batch.data());
  sampler.denoise_shared_noise(weights, 30, 4, 1, alone.data());
  const std::vector<float> first(batch.begin(), batch.begin() + img), second(batch.begin() + img, batch.begin() + 2 * img),
      third(batch.begin() + 2 * img, batch.end());
  BOOST_TEST(first == third);
  BOOST_TEST(test::rel_error(alone, std::vector<double>(first.begin(), first.end())) < 1e-6);
  BOOST_TEST(test::rel_error(second, std::vector<double>(first.begin(), first.end())) > 1e-3);
  std::vector<float> other_noise(a);
  sampler.denoise_shared_noise(weights, 30, 5, 1, other_noise.data());
  BOOST_TEST(test::rel_error(other_noise, std::vector<double>(alone.begin(), alone.end())) > 1e-3);
  BOOST_CHECK_THROW(sampler.denoise_shared_noise(weights, 50, 4, 1, alone.data()), InputError);
}
