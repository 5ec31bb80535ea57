// The network description (core/graph.h): a graph of nodes gives the same forward as
// the same ops called by hand, its backward assigns the first gradient of a tensor read
// twice and adds the second (checked by finite differences), gradient slots are reused
// along a chain, a forward-only plan holds less memory, a branchy forward-only
// network of the Inception kind (1x1 and 3x3 branches, a pool, concatenations) is
// expressed the same way, and a forward-only graph may have several outputs.
#define BOOST_TEST_MODULE graph
#include <boost/test/unit_test.hpp>

#include <memory>

#include "core/blocks.h"
#include "core/common.h"
#include "core/cpu/cpu_ops.h"
#include "core/graph.h"
#include "core/unet.h"
#include "gradcheck.h"

using namespace ddpm;
using test::random_vector;

namespace {

Ops& ops() {
  static std::unique_ptr<Ops> o = make_cpu_ops();
  return *o;
}

std::vector<float> random_params(const ParamLayout& layout, uint32_t stream) {
  std::vector<float> p(static_cast<size_t>(layout.size()), 0.0f);
  for (const ParamInfo& info : layout.params()) {
    const std::vector<float> v = random_vector(info.numel, stream + static_cast<uint32_t>(info.offset), 0.5f);
    std::copy(v.begin(), v.end(), p.begin() + info.offset);
  }
  return p;
}

// A k x k "same" convolution node.
std::unique_ptr<ConvNode> conv(ParamLayout& layout, const std::string& name, int c, int o, int hw, int k) {
  return std::make_unique<ConvNode>(layout, name, c, o, hw, hw, InitKind::kWeight, k);
}

}  // namespace

// x feeds two branches: a = conv_a(x) and b = conv_b(x); out = [a | b]. The tensor x
// has two readers, so its gradient is assigned by one branch's backward and added by
// the other's; the graph must say which.
BOOST_AUTO_TEST_CASE(two_readers_forward_and_gradient) {
  const int N = 2, HW = 5, C = 4, Oa = 3, Ob = 5;
  ParamLayout layout;
  Graph g;
  const auto in = g.input(TensorShape{HW, HW, C});
  const auto x = g.add(conv(layout, "stem", C, C, HW, 3), {in}, TensorShape{HW, HW, C});
  const auto a = g.add(conv(layout, "branch_a", C, Oa, HW, 3), {x}, TensorShape{HW, HW, Oa});
  const auto b = g.add(conv(layout, "branch_b", C, Ob, HW, 3), {x}, TensorShape{HW, HW, Ob});
  g.set_output(g.add(std::make_unique<Concat>(Oa, Ob, HW, HW), {a, b}, TensorShape{HW, HW, Oa + Ob}));
  g.prepare(ops(), N);
  BOOST_TEST(g.macs_per_image() == int64_t{HW} * HW * 9 * (C * C + C * Oa + C * Ob));

  std::vector<float> params = random_params(layout, 10), grads(params.size(), 0.0f);
  std::vector<float> image = random_vector(int64_t{N} * HW * HW * C, 11);
  std::vector<float> out(static_cast<size_t>(N) * HW * HW * (Oa + Ob));
  Pass ps;
  ps.ops = &ops(), ps.params = params.data(), ps.grads = grads.data(), ps.N = N;
  const float* inputs[] = {image.data()};
  g.forward(ps, inputs, out.data());

  // The same by hand.
  auto spec = [&](int c, int o) {
    ConvSpec s;
    s.N = N, s.H = s.W = HW, s.C = c, s.O = o;
    return s;
  };
  const int64_t M = int64_t{N} * HW * HW;
  std::vector<float> hx(M * C), ha(M * Oa), hb(M * Ob), expected(out.size());
  auto run = [&](const char* name, int c, int o, float* y, const float* xin) {
    ops().make_conv2d(spec(c, o))->forward(y, false, xin, params.data() + layout.at(cat(name, ".weight")).offset,
                                           params.data() + layout.at(cat(name, ".bias")).offset, 1);
  };
  run("stem", C, C, hx.data(), image.data());
  run("branch_a", C, Oa, ha.data(), hx.data());
  run("branch_b", C, Ob, hb.data(), hx.data());
  ops().concat_channels(expected.data(), ha.data(), hb.data(), M, Oa, Ob);
  for (size_t i = 0; i < out.size(); ++i) BOOST_REQUIRE_EQUAL(out[i], expected[i]);

  // The stem's weight gradient collects both branches' contributions to dL/dx.
  const std::vector<float> R = random_vector(static_cast<int64_t>(out.size()), 12);
  g.backward(ps, R.data());
  auto loss = [&] {
    ++ps.version;  // the weights changed: the convolutions must reorder them again
    g.forward(ps, inputs, out.data());
    return test::dot(R, out.data());
  };
  const ParamInfo& stem = layout.at("stem.weight");
  const test::GradCheckResult r = test::numeric_gradient_check(params.data() + stem.offset, stem.numel,
                                                               grads.data() + stem.offset, loss, 40);
  BOOST_TEST(r.analytic_norm > 1e-3);
  BOOST_TEST(r.rel_error <= 1e-2);
}

// Along a chain of blocks the gradients ping-pong between two slots; the skips of the
// U-Net add one slot per waiting gradient at most. A forward-only plan holds no
// gradients and no backward temporaries.
BOOST_AUTO_TEST_CASE(gradient_memory_is_reused) {
  const int N = 2, HW = 4, C = 32;
  const int64_t act = int64_t{N} * HW * HW * C;
  auto chain = [&](int length, bool forward_only) {
    ParamLayout layout;
    Graph g;
    Graph::TensorId h = g.input(TensorShape{HW, HW, C});
    for (int i = 0; i < length; ++i) h = g.add(conv(layout, cat("c", i), C, C, HW, 3), {h}, TensorShape{HW, HW, C});
    g.set_output(h);
    g.prepare(ops(), N, forward_only ? PlanMode::kForwardOnly : PlanMode::kTraining);
    const int64_t floats = g.arena_floats();
    g.release();
    return floats;
  };
  // Each extra node adds its output tensor and nothing for gradients.
  BOOST_TEST(chain(6, false) - chain(5, false) == act);
  BOOST_TEST(chain(6, true) - chain(5, true) == act);
  // Two gradient slots in all: the backward plan is two activations larger.
  BOOST_TEST(chain(6, false) - chain(6, true) == 2 * act);

  ModelConfig cfg;
  cfg.resolution = 8, cfg.in_channels = 3, cfg.out_ch = 3, cfg.ch = 32, cfg.ch_mult = {1, 2};
  cfg.num_res_blocks = 1, cfg.attn_resolutions = {4};
  UNet net(cfg);
  net.prepare(ops(), N, PlanMode::kForwardOnly);
  const int64_t forward_only = net.activation_floats();
  net.prepare(ops(), N);
  BOOST_TEST(net.activation_floats() > forward_only);
}

// A forward-only plan that shares memory packs the tensors between nodes by lifetime:
// along a chain two slots take turns, whatever its length, and the output is the same.
BOOST_AUTO_TEST_CASE(shared_forward_memory_ping_pongs_along_a_chain) {
  const int N = 2, HW = 4, C = 32;
  const int64_t act = int64_t{N} * HW * HW * C;
  auto chain = [&](int length, bool share, std::vector<float>* out) {
    ParamLayout layout;
    Graph g;
    Graph::TensorId h = g.input(TensorShape{HW, HW, C});
    for (int i = 0; i < length; ++i) h = g.add(conv(layout, cat("c", i), C, C, HW, 3), {h}, TensorShape{HW, HW, C});
    g.set_output(h);
    if (share) g.share_forward_memory();
    g.prepare(ops(), N, PlanMode::kForwardOnly);
    const std::vector<float> params = random_params(layout, 40), image = random_vector(act, 41);
    out->assign(static_cast<size_t>(act), 0.0f);
    Pass ps;
    ps.ops = &ops(), ps.params = params.data(), ps.N = N;
    const float* inputs[] = {image.data()};
    g.forward(ps, inputs, out->data());
    return g.arena_floats();
  };
  std::vector<float> kept, shared, longer;
  BOOST_TEST(chain(6, false, &kept) == 5 * act);
  BOOST_TEST(chain(6, true, &shared) == 2 * act);
  BOOST_TEST(chain(9, true, &longer) == 2 * act);
  BOOST_TEST(shared == kept);
}

// An Inception-style module, forward only: four branches (1x1; 1x1 -> 3x3; 3x3 -> 3x3;
// average pool -> 1x1 at half resolution, then upsampled) joined by concatenations.
BOOST_AUTO_TEST_CASE(branchy_forward_only_network) {
  const int N = 1, HW = 8, C = 8;
  ParamLayout layout;
  Graph g;
  const auto x = g.input(TensorShape{HW, HW, C});
  const auto b1 = g.add(conv(layout, "b1", C, 4, HW, 1), {x}, TensorShape{HW, HW, 4});
  const auto b2a = g.add(conv(layout, "b2a", C, 4, HW, 1), {x}, TensorShape{HW, HW, 4});
  const auto b2 = g.add(conv(layout, "b2b", 4, 6, HW, 3), {b2a}, TensorShape{HW, HW, 6});
  const auto b3a = g.add(conv(layout, "b3a", C, 4, HW, 3), {x}, TensorShape{HW, HW, 4});
  const auto b3 = g.add(conv(layout, "b3b", 4, 6, HW, 3), {b3a}, TensorShape{HW, HW, 6});
  const auto pooled = g.add(std::make_unique<Downsample>(layout, "pool", C, HW, HW, Resample::kWithoutConv), {x},
                            TensorShape{HW / 2, HW / 2, C});
  const auto b4a = g.add(conv(layout, "b4", C, 2, HW / 2, 1), {pooled}, TensorShape{HW / 2, HW / 2, 2});
  const auto b4 = g.add(std::make_unique<Upsample>(layout, "up", 2, HW / 2, HW / 2, Resample::kWithoutConv), {b4a},
                        TensorShape{HW, HW, 2});
  const auto j12 = g.add(std::make_unique<Concat>(4, 6, HW, HW), {b1, b2}, TensorShape{HW, HW, 10});
  const auto j34 = g.add(std::make_unique<Concat>(6, 2, HW, HW), {b3, b4}, TensorShape{HW, HW, 8});
  g.set_output(g.add(std::make_unique<Concat>(10, 8, HW, HW), {j12, j34}, TensorShape{HW, HW, 18}));
  // Forward only plans no gradients and no backward temporaries (and backward() refuses,
  // below): less memory than the same graph planned for training.
  g.prepare(ops(), N, PlanMode::kTraining);
  const int64_t training_floats = g.arena_floats();
  g.prepare(ops(), N, PlanMode::kForwardOnly);
  BOOST_TEST(g.arena_floats() < training_floats);

  std::vector<float> params = random_params(layout, 20);
  std::vector<float> image = random_vector(int64_t{N} * HW * HW * C, 21);
  std::vector<float> out(static_cast<size_t>(N) * HW * HW * 18, -7.0f);
  Pass ps;
  ps.ops = &ops(), ps.params = params.data(), ps.N = N;
  const float* inputs[] = {image.data()};
  g.forward(ps, inputs, out.data());
  // Every channel of every branch was written, and the pooled branch is constant over
  // each 2x2 block (nearest upsampling of a half-resolution map).
  for (float v : out) BOOST_REQUIRE(v != -7.0f);
  for (int y = 0; y < HW; y += 2) {
    for (int xx = 0; xx < HW; xx += 2) {
      for (int c = 16; c < 18; ++c) {
        const float v = out[(y * HW + xx) * 18 + c];
        BOOST_TEST(out[(y * HW + xx + 1) * 18 + c] == v);
        BOOST_TEST(out[((y + 1) * HW + xx) * 18 + c] == v);
      }
    }
  }
  BOOST_CHECK_THROW(g.backward(ps, out.data()), Error);
}

// A forward-only graph may have several outputs, which later nodes may also read (the
// Inception's pool_3 features feed its classifier); such a graph is never planned for
// backward. out_a = conv_a(x), out_b = conv_b(out_a), as the same convolutions by hand.
BOOST_AUTO_TEST_CASE(several_outputs_read_by_later_nodes) {
  const int N = 2, HW = 5, C = 3, A = 4, B = 6;
  ParamLayout layout;
  Graph g;
  const auto x = g.input(TensorShape{HW, HW, C});
  const auto a = g.add(conv(layout, "a", C, A, HW, 3), {x}, TensorShape{HW, HW, A});
  const auto b = g.add(conv(layout, "b", A, B, HW, 1), {a}, TensorShape{HW, HW, B});
  g.set_outputs({b, a});
  BOOST_CHECK_THROW(g.prepare(ops(), N, PlanMode::kTraining), Error);
  g.prepare(ops(), N, PlanMode::kForwardOnly);

  const std::vector<float> params = random_params(layout, 30);
  const std::vector<float> image = random_vector(int64_t{N} * HW * HW * C, 31);
  std::vector<float> out_a(static_cast<size_t>(N) * HW * HW * A), out_b(static_cast<size_t>(N) * HW * HW * B);
  Pass ps;
  ps.ops = &ops(), ps.params = params.data(), ps.N = N;
  const float* inputs[] = {image.data()};
  float* const outputs[] = {out_b.data(), out_a.data()};
  g.forward(ps, inputs, outputs);

  auto by_hand = [&](const std::string& name, int c, int o, int k, const float* in) {
    ConvSpec s;
    s.N = N, s.H = s.W = HW, s.C = c, s.O = o;
    s.with_kernel(k, k, 1, k / 2, k / 2);
    std::vector<float> y(static_cast<size_t>(N) * HW * HW * o);
    ops().make_conv2d(s)->forward(y.data(), false, in, params.data() + layout.at(name + ".weight").offset,
                                  params.data() + layout.at(name + ".bias").offset, 1);
    return y;
  };
  BOOST_TEST(out_a == by_hand("a", C, A, 3, image.data()));
  BOOST_TEST(out_b == by_hand("b", A, B, 1, out_a.data()));
}
