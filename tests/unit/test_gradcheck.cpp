// Finite-difference gradient checks: every CPU layer, every block, and the whole U-Net
// on tiny configs (attention, nin_shortcut, dropout, both resampling modes).
#define BOOST_TEST_MODULE gradcheck
#include <boost/test/unit_test.hpp>

#include <memory>

#include "core/blocks.h"
#include "core/cpu/cpu_ops.h"
#include "core/unet.h"
#include "gradcheck.h"

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

BOOST_AUTO_TEST_CASE(linear) {
  const int M = 6, C = 5, O = 7;
  auto x = random_vector(M * C, 1), w = random_vector(O * C, 2), b = random_vector(O, 3), R = random_vector(M * O, 4);
  std::vector<float> out(M * O);
  auto loss = [&] {
    ops().linear_forward(out.data(), false, x.data(), w.data(), b.data(), M, C, O);
    return test::dot(R, out.data());
  };
  std::vector<float> dx(M * C), dw(O * C, 0.0f), db(O, 0.0f);
  ops().linear_backward(dx.data(), false, dw.data(), db.data(), R.data(), x.data(), w.data(), M, C, O);
  expect_close("linear dx", numeric_gradient_check(x.data(), x.size(), dx.data(), loss));
  expect_close("linear dw", numeric_gradient_check(w.data(), w.size(), dw.data(), loss));
  expect_close("linear db", numeric_gradient_check(b.data(), b.size(), db.data(), loss));
  // accumulate adds to what is there
  std::vector<float> dx2(M * C, 1.0f);
  ops().linear_backward(dx2.data(), true, dw.data(), db.data(), R.data(), x.data(), w.data(), M, C, O);
  for (int i = 0; i < M * C; ++i) BOOST_TEST(dx2[i] == dx[i] + 1.0f, boost::test_tools::tolerance(1e-5f));
}

struct ConvCase {
  const char* name;
  ConvSpec spec;
};

BOOST_AUTO_TEST_CASE(conv2d) {
  ConvSpec plain;
  plain.N = 2, plain.H = 5, plain.W = 6, plain.C = 3, plain.O = 4;
  ConvSpec down = plain;
  down.H = 6, down.stride = 2, down.pad_top = 0, down.pad_left = 0, down.pad_bottom = 1, down.pad_right = 1;
  for (const ConvCase& cc : {ConvCase{"conv 3x3", plain}, ConvCase{"downsample conv", down}}) {
    const ConvSpec& s = cc.spec;
    auto conv = ops().make_conv2d(s);
    const int64_t n_in = int64_t{s.N} * s.H * s.W * s.C, n_out = int64_t{s.N} * s.out_h() * s.out_w() * s.O;
    auto x = random_vector(n_in, 10), w = random_vector(s.O * s.C * 9, 11), b = random_vector(s.O, 12);
    auto R = random_vector(n_out, 13);
    std::vector<float> out(n_out);
    uint64_t version = 0;
    auto loss = [&] {
      conv->forward(out.data(), false, x.data(), w.data(), b.data(), ++version);
      return test::dot(R, out.data());
    };
    std::vector<float> dx(n_in), dw(w.size(), 0.0f), db(s.O, 0.0f);
    conv->backward(dx.data(), false, dw.data(), db.data(), R.data(), x.data(), w.data(), ++version);
    expect_close(std::string(cc.name) + " dx", numeric_gradient_check(x.data(), n_in, dx.data(), loss));
    expect_close(std::string(cc.name) + " dw", numeric_gradient_check(w.data(), w.size(), dw.data(), loss));
    expect_close(std::string(cc.name) + " db", numeric_gradient_check(b.data(), s.O, db.data(), loss));
  }
}

BOOST_AUTO_TEST_CASE(groupnorm_with_and_without_swish) {
  for (bool swish : {false, true}) {
    for (int G : {2, 8}) {
      const int N = 2, HW = 5, C = 8;
      auto x = random_vector(N * HW * C, 20, 2.0f), w = random_vector(C, 21), b = random_vector(C, 22);
      for (float& v : w) v += 1.0f;
      auto R = random_vector(N * HW * C, 23);
      std::vector<float> out(x.size()), mean(N * G), rstd(N * G);
      auto loss = [&] {
        ops().groupnorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(),
                                {N, HW, C, G, swish ? Activation::kSwish : Activation::kNone});
        return test::dot(R, out.data());
      };
      loss();
      std::vector<float> dx(x.size()), dw(C, 0.0f), db(C, 0.0f);
      ops().groupnorm_backward(dx.data(), false, dw.data(), db.data(), R.data(), x.data(), mean.data(), rstd.data(),
                               w.data(), b.data(), {N, HW, C, G, swish ? Activation::kSwish : Activation::kNone});
      const std::string tag = std::string("groupnorm G=") + std::to_string(G) + (swish ? " +swish" : "");
      expect_close(tag + " dx", numeric_gradient_check(x.data(), x.size(), dx.data(), loss, 40));
      expect_close(tag + " dw", numeric_gradient_check(w.data(), C, dw.data(), loss));
      expect_close(tag + " db", numeric_gradient_check(b.data(), C, db.data(), loss));
    }
  }
}

BOOST_AUTO_TEST_CASE(swish_dropout_bias_resample_concat) {
  const int N = 2, H = 4, W = 6, C = 3;
  const int64_t n = int64_t{N} * H * W * C;
  auto x = random_vector(n, 30, 3.0f);
  {
    auto R = random_vector(n, 31);
    std::vector<float> out(n), dx(n);
    auto loss = [&] {
      ops().swish_forward(out.data(), x.data(), n);
      return test::dot(R, out.data());
    };
    ops().swish_backward(dx.data(), R.data(), x.data(), n);
    expect_close("swish", numeric_gradient_check(x.data(), n, dx.data(), loss));
  }
  {
    DropoutKey key{7, 3, 11, 5};
    auto R = random_vector(n, 32);
    std::vector<float> out(n);
    auto loss = [&] {
      out = x;
      ops().dropout_apply(out.data(), 0.4f, key, N, n / N);
      return test::dot(R, out.data());
    };
    std::vector<float> dx = R;
    ops().dropout_apply(dx.data(), 0.4f, key, N, n / N);
    expect_close("dropout", numeric_gradient_check(x.data(), n, dx.data(), loss, 40));
  }
  {
    auto bias = random_vector(N * C, 33), R = random_vector(n, 34);
    std::vector<float> out(n), dbias(N * C);
    auto loss = [&] {
      out = x;
      ops().add_channel_bias(out.data(), bias.data(), N, H * W, C);
      return test::dot(R, out.data());
    };
    ops().sum_over_hw(dbias.data(), R.data(), N, H * W, C);
    expect_close("channel bias", numeric_gradient_check(bias.data(), N * C, dbias.data(), loss));
  }
  {
    auto R = random_vector(n * 4, 35);
    std::vector<float> out(n * 4), dx(n);
    auto loss = [&] {
      ops().upsample2x_forward(out.data(), x.data(), N, H, W, C);
      return test::dot(R, out.data());
    };
    ops().upsample2x_backward(dx.data(), R.data(), N, H, W, C);
    expect_close("upsample", numeric_gradient_check(x.data(), n, dx.data(), loss));
  }
  {
    auto R = random_vector(n / 4, 36);
    std::vector<float> out(n / 4), dx(n, 0.5f);
    auto loss = [&] {
      ops().avgpool2x_forward(out.data(), x.data(), N, H, W, C);
      return test::dot(R, out.data());
    };
    ops().avgpool2x_backward(dx.data(), true, R.data(), N, H, W, C);
    for (float& v : dx) v -= 0.5f;  // accumulate added to 0.5
    expect_close("avgpool", numeric_gradient_check(x.data(), n, dx.data(), loss));
  }
  {
    const int64_t M = int64_t{N} * H * W;
    auto y = random_vector(M * 2, 37), R = random_vector(M * (C + 2), 38);
    std::vector<float> out(M * (C + 2)), dx(n), dy(M * 2);
    auto loss = [&] {
      ops().concat_channels(out.data(), x.data(), y.data(), M, C, 2);
      return test::dot(R, out.data());
    };
    ops().split_channels(dx.data(), dy.data(), R.data(), M, C, 2);
    expect_close("concat a", numeric_gradient_check(x.data(), n, dx.data(), loss));
    expect_close("concat b", numeric_gradient_check(y.data(), M * 2, dy.data(), loss));
  }
}

BOOST_AUTO_TEST_CASE(attention_core) {
  const int N = 2, L = 6, C = 5;
  auto q = random_vector(N * L * C, 40, 1.5f), k = random_vector(N * L * C, 41, 1.5f), v = random_vector(N * L * C, 42);
  auto R = random_vector(N * L * C, 43);
  std::vector<float> a(N * L * C), p(N * L * L);
  auto loss = [&] {
    ops().attention_forward(a.data(), p.data(), q.data(), k.data(), v.data(), N, L, C);
    return test::dot(R, a.data());
  };
  loss();
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  ops().attention_backward(dq.data(), dk.data(), dv.data(), R.data(), p.data(), q.data(), k.data(), v.data(), N, L, C);
  expect_close("attention dq", numeric_gradient_check(q.data(), q.size(), dq.data(), loss, 40));
  expect_close("attention dk", numeric_gradient_check(k.data(), k.size(), dk.data(), loss, 40));
  expect_close("attention dv", numeric_gradient_check(v.data(), v.size(), dv.data(), loss, 40));
}

namespace {
// Runs a block-like object through a planned arena.
template <typename Block>
void plan_block(Arena& arena, Block& block, int N) {
  arena.begin_pass();
  block.plan(arena, N);
  arena.allocate(ops());
  arena.begin_pass();
  block.plan(arena, N);
}
}  // namespace

BOOST_AUTO_TEST_CASE(resblock_with_and_without_nin_shortcut) {
  // Channels per group > 1: with one channel per group a per-channel bias before the
  // norm (conv1.bias, temb_proj) cancels exactly and has a zero gradient.
  for (int out_ch : {64, 128}) {
    const int N = 2, H = 3, W = 4, in_ch = 64, temb_ch = 16;
    ParamLayout layout;
    ResBlock block(layout, "blk", in_ch, out_ch, temb_ch, H, W, 0.3f, 5);
    block.build(ops(), N);
    Arena arena;
    plan_block(arena, block, N);
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
    block.backward(ps, dx.data(), false, dtemb.data(), R.data());
    const std::string tag = out_ch == in_ch ? "resblock " : "resblock+nin ";
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
  block.backward(ps, dx.data(), false, R.data());
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
