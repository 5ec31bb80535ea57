// Finite-difference gradient checks: every differentiable case of the op registry on
// every backend present (the CPU always, CUDA when a device is there), then every
// block and the whole U-Net on tiny configs on the CPU (attention, nin_shortcut,
// dropout, both resampling modes).
#define BOOST_TEST_MODULE gradcheck
#include <boost/test/unit_test.hpp>

#include <memory>
#include <utility>

#include "core/blocks.h"
#include "core/cpu/cpu_ops.h"
#include "core/unet.h"
#include "backends.h"
#include "gradcheck.h"
#include "op_registry.h"

using namespace ddpm;
using test::numeric_gradient_check;
using test::random_vector;

namespace {

constexpr double kTol = 1e-2;

Ops& ops() {
  static std::unique_ptr<Ops> o = make_cpu_ops();
  return *o;
}

void expect_close(const std::string& what, const test::GradCheckResult& r) {
  BOOST_TEST_CONTEXT(what << " (|g| = " << r.analytic_norm << ", " << r.checked << " samples)") {
    BOOST_TEST(r.checked > 0);
    BOOST_TEST(r.analytic_norm > 1e-6);
    BOOST_TEST(r.rel_error <= kTol);
    BOOST_TEST_MESSAGE(what << ": relative error " << r.rel_error);
  }
}

// Parameters of a layout filled with test values that keep activations of order one
// (weights at the variance-scaling limit, no zero init), norm weights around 1 and
// biases that are not zero, so that every term of every gradient is exercised.
std::vector<float> test_params(const ParamLayout& layout, uint32_t stream) {
  std::vector<float> p(static_cast<size_t>(layout.size()), 0.0f);
  for (const ParamInfo& info : layout.params()) {
    std::vector<float> v = random_vector(info.numel, stream + static_cast<uint32_t>(info.offset), 1.0f);
    const bool weight = info.shape.size() >= 2;
    const float limit = weight ? static_cast<float>(fan_avg_uniform_limit(info.shape, 1.0)) : 0.3f;
    for (int64_t i = 0; i < info.numel; ++i) {
      p[info.offset + i] = info.init == InitKind::kNormWeight ? 1.0f + v[i] * 0.3f : v[i] * limit;
    }
  }
  return p;
}

// The key bias of attention has an exactly zero gradient: it adds q.b_k to every score
// of a query, and softmax is invariant to that. Its check is that both are ~0 (the
// numeric one up to finite-difference noise).
bool has_zero_gradient(const std::string& name) { return name.find(".k.bias") != std::string::npos; }

// Checks every tensor of a layout: `loss` runs the forward pass, `grads` the analytic ones.
// samples > 0: element-wise checks on that many elements; 0: directional checks.
void check_all_params(const std::string& prefix, const ParamLayout& layout, std::vector<float>& params,
                      const std::vector<float>& grads, const std::function<double()>& loss, int samples) {
  for (const ParamInfo& info : layout.params()) {
    float* var = params.data() + info.offset;
    const float* g = grads.data() + info.offset;
    const test::GradCheckResult r =
        samples > 0 ? numeric_gradient_check(var, info.numel, g, loss, samples)
                    : test::directional_gradient_check(var, info.numel, g, loss, static_cast<uint32_t>(info.offset));
    if (has_zero_gradient(info.name)) {
      BOOST_TEST_CONTEXT(prefix + info.name) {
        // float32 noise of a directional difference here is ~1e-3 (measured)
        BOOST_TEST(r.analytic_norm < 1e-5);
        BOOST_TEST(r.numeric_norm < 5e-3);
      }
    } else {
      expect_close(prefix + info.name, r);
    }
  }
}

}  // namespace

namespace {

// One registry case's backward against finite differences of its forward, on `ops`:
// L = sum over outputs of dot(d<output>, output), every input element sampled.
void check_registry_case(Ops& ops, const test::OpCase& c, const std::string& backend) {
  test::BackendTensors t(ops, c.tensors);
  c.forward(ops, t);
  c.backward(ops, t);
  auto loss = [&] {
    c.forward(ops, t);
    double l = 0;
    for (const std::string& out : c.outputs) l += test::dot(c.tensors.at("d" + out), t.download(out).data());
    return l;
  };
  for (const std::string& in : c.inputs) {
    const std::vector<float> analytic = t.download("d" + in);
    const test::ElementAccess access{t.size(in), [&](int64_t i) { return t.get(in, i); },
                                     [&](int64_t i, float v) { t.set(in, i, v); }};
    expect_close(backend + " " + c.label() + " d" + in,
                 numeric_gradient_check(access, analytic.data(), loss, c.fd_samples));
  }
}

}  // namespace

// Every differentiable case of the registry (op_registry.h: every layer op on the
// model's shapes) on every backend this process has.
BOOST_AUTO_TEST_CASE(every_registry_case_on_every_backend) {
  int checked = 0;
  for (const test::PresentBackend& backend : test::present_backends()) {
    BOOST_TEST_MESSAGE("finite differences on backend " << backend.name);
    for (const test::OpCase& c : test::op_cases()) {
      if (!c.backward) continue;
      check_registry_case(*backend.ops, c, backend.name);
      ++checked;
    }
  }
  BOOST_TEST(checked >= 50);
}

// Activation gradients accumulate when asked; parameter gradients always do.
BOOST_AUTO_TEST_CASE(accumulate_adds_to_what_is_there) {
  const int M = 6, C = 5, O = 7;
  auto x = random_vector(M * C, 1), w = random_vector(O * C, 2), R = random_vector(M * O, 4);
  std::vector<float> dx(M * C), dw(O * C, 0.0f), db(O, 0.0f);
  ops().linear_backward(dx.data(), false, dw.data(), db.data(), R.data(), x.data(), w.data(), M, C, O);
  const std::vector<float> dw1 = dw, db1 = db;
  std::vector<float> dx2(M * C, 1.0f);
  ops().linear_backward(dx2.data(), true, dw.data(), db.data(), R.data(), x.data(), w.data(), M, C, O);
  for (int i = 0; i < M * C; ++i) BOOST_TEST(dx2[i] == dx[i] + 1.0f, boost::test_tools::tolerance(1e-5f));
  for (int i = 0; i < O * C; ++i) BOOST_TEST(dw[i] == 2.0f * dw1[i], boost::test_tools::tolerance(1e-5f));
  for (int i = 0; i < O; ++i) BOOST_TEST(db[i] == 2.0f * db1[i], boost::test_tools::tolerance(1e-5f));

  const int N = 2, H = 4, W = 6;
  auto R4 = random_vector(N * H * W * C / 4, 36);
  std::vector<float> assigned(N * H * W * C, 7.0f), accumulated(N * H * W * C, 0.5f);
  ops().avgpool2x_backward(assigned.data(), false, R4.data(), N, H, W, C);
  ops().avgpool2x_backward(accumulated.data(), true, R4.data(), N, H, W, C);
  for (size_t i = 0; i < assigned.size(); ++i) {
    BOOST_TEST(accumulated[i] == assigned[i] + 0.5f, boost::test_tools::tolerance(1e-6f));
  }
}

namespace {
// Runs a block-like object through a planned arena.
template <typename Block>
void plan_block(Arena& arena, Block& block, int N, PlanMode mode = PlanMode::kTraining) {
  arena.begin_pass();
  block.plan(arena, N, mode);
  arena.allocate(ops());
  arena.begin_pass();
  block.plan(arena, N, mode);
}
}  // namespace

BOOST_AUTO_TEST_CASE(resblock_with_and_without_nin_shortcut) {
  // Channels per group > 1: with one channel per group a per-channel bias before the
  // norm (conv1.bias, temb_proj) cancels exactly and has a zero gradient.
  // The last case recomputes the inner activations in backward (train.recompute).
  const std::pair<int, PlanMode> cases[] = {
      {64, PlanMode::kTraining}, {128, PlanMode::kTraining}, {128, PlanMode::kTrainingRecompute}};
  for (const auto& [out_ch, mode] : cases) {
    const int N = 2, H = 3, W = 4, in_ch = 64, temb_ch = 16;
    ParamLayout layout;
    ResBlock block(layout, "blk", in_ch, out_ch, temb_ch, H, W, 0.3f, 5);
    block.build(ops(), N);
    Arena arena;
    plan_block(arena, block, N, mode);
    auto params = test_params(layout, 100);
    std::vector<float> grads(params.size(), 0.0f);
    auto x = random_vector(int64_t{N} * H * W * in_ch, 50, 2.0f), temb = random_vector(N * temb_ch, 51);
    auto R = random_vector(int64_t{N} * H * W * out_ch, 52);
    std::vector<float> out(R.size());
    Pass ps;
    ps.ops = &ops(), ps.params = params.data(), ps.grads = grads.data(), ps.N = N, ps.training = true;
    ps.dropout = DropoutKey{9, 0, 4, 0};
    auto loss = [&] {
      ++ps.version;
      block.forward(ps, out.data(), x.data(), temb.data());
      return test::dot(R, out.data());
    };
    loss();
    std::vector<float> dx(x.size()), dtemb(temb.size(), 0.0f);
    block.backward(ps, InputGrad{dx.data(), GradWrite::kAssign}, InputGrad{dtemb.data(), GradWrite::kAdd}, R.data());
    const std::string tag = std::string(out_ch == in_ch ? "resblock " : "resblock+nin ") +
                            (mode == PlanMode::kTrainingRecompute ? "recomputed " : "");
    expect_close(tag + "dx", numeric_gradient_check(x.data(), x.size(), dx.data(), loss, 40));
    expect_close(tag + "dtemb", numeric_gradient_check(temb.data(), temb.size(), dtemb.data(), loss));
    check_all_params(tag, layout, params, grads, loss, 12);
    arena.release(ops());
  }
}

BOOST_AUTO_TEST_CASE(attnblock) {
  const int N = 2, H = 3, W = 3, ch = 64;
  ParamLayout layout;
  AttnBlock block(layout, "attn", ch, H, W);
  Arena arena;
  plan_block(arena, block, N);
  auto params = test_params(layout, 200);
  std::vector<float> grads(params.size(), 0.0f);
  auto x = random_vector(int64_t{N} * H * W * ch, 60, 2.0f), R = random_vector(int64_t{N} * H * W * ch, 61);
  std::vector<float> out(R.size());
  Pass ps;
  ps.ops = &ops(), ps.params = params.data(), ps.grads = grads.data(), ps.N = N;
  auto loss = [&] {
    block.forward(ps, out.data(), x.data());
    return test::dot(R, out.data());
  };
  loss();
  std::vector<float> dx(x.size());
  block.backward(ps, InputGrad{dx.data(), GradWrite::kAssign}, R.data());
  expect_close("attnblock dx", numeric_gradient_check(x.data(), x.size(), dx.data(), loss, 40));
  check_all_params("attnblock ", layout, params, grads, loss, 12);
  arena.release(ops());
}

namespace {
void check_unet(const ModelConfig& cfg, const std::string& tag) {
  UNet net(cfg);
  const int N = 2, R = cfg.resolution;
  net.prepare(ops(), N);
  auto params = test_params(net.layout(), 300);
  std::vector<float> grads(params.size(), 0.0f);
  auto x = random_vector(int64_t{N} * R * R * cfg.in_channels, 70, 1.0f);
  auto Rw = random_vector(int64_t{N} * R * R * cfg.out_ch, 71);
  const std::vector<float> t{7.0f, 801.0f};
  std::vector<float> eps(Rw.size());
  Pass ps;
  ps.ops = &ops(), ps.params = params.data(), ps.grads = grads.data(), ps.N = N, ps.training = true;
  ps.dropout = DropoutKey{3, 0, 17, 2};
  auto loss = [&] {
    ++ps.version;
    net.forward(ps, eps.data(), x.data(), t.data());
    return test::dot(Rw, eps.data());
  };
  loss();
  net.backward(ps, Rw.data());
  check_all_params(tag, net.layout(), params, grads, loss, 0);
}
}  // namespace

BOOST_AUTO_TEST_CASE(unet_tiny_conv_resampling) {
  ModelConfig cfg;
  cfg.resolution = 8, cfg.in_channels = 3, cfg.out_ch = 3, cfg.ch = 64, cfg.ch_mult = {1, 2};
  cfg.num_res_blocks = 1, cfg.attn_resolutions = {4}, cfg.dropout = 0.2, cfg.resamp_with_conv = true;
  check_unet(cfg, "unet(conv resampling) ");
}

BOOST_AUTO_TEST_CASE(unet_tiny_pool_resampling) {
  ModelConfig cfg;
  cfg.resolution = 8, cfg.in_channels = 1, cfg.out_ch = 2, cfg.ch = 64, cfg.ch_mult = {1, 1, 2};
  cfg.num_res_blocks = 2, cfg.attn_resolutions = {8, 2}, cfg.dropout = 0.0, cfg.resamp_with_conv = false;
  check_unet(cfg, "unet(avgpool resampling) ");
}
