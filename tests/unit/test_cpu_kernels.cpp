// The CPU backend's fast kernels (oneDNN convolutions, sgemm-based linear and
// attention, vectorised GroupNorm and exp) against plain loops in double precision, on
// the shapes the cifar10 and 256x256 models use.
#define BOOST_TEST_MODULE cpu_kernels
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "core/cpu/conv2d_winograd.h"
#include "core/cpu/cpu_ops.h"
#include "core/cpu/vec_math.h"
#include "core/diffusion_ops.h"
#include "core/rng.h"
#include "gradcheck.h"
#include "op_registry.h"
#include "reference_ops.h"

using namespace ddpm;
using test::random_vector;
using test::conv3x3;
using test::downsample;
using test::rel_error;

namespace {

Ops& ops() {
  static std::unique_ptr<Ops> o = make_cpu_ops();
  return *o;
}


BOOST_AUTO_TEST_CASE(conv_forward_matches_plain_loops_on_model_shapes) {
  const ConvSpec shapes[] = {
      conv3x3(2, 32, 3, 128),   // cifar10 conv_in
      conv3x3(2, 32, 128, 128), // cifar10 level 0
      conv3x3(1, 16, 128, 256), // cifar10 level 1 conv1
      downsample(2, 32, 128),   // cifar10 downsample
      conv3x3(2, 8, 256, 256),  // cifar10 levels 2-3
      conv3x3(2, 32, 128, 3),   // conv_out
      conv3x3(1, 64, 128, 128), // 256x256 model level 2 (64x64)
      conv3x3(1, 8, 512, 512),  // 256x256 model level 5 (8x8)
      downsample(1, 16, 256),   // 256x256 model downsample 16 -> 8
  };
  uint32_t stream = 100;
  for (const ConvSpec& s : shapes) {
    BOOST_TEST_CONTEXT("N" << s.N << " " << s.H << "x" << s.W << " " << s.C << "->" << s.O << " stride " << s.stride) {
      auto x = random_vector(int64_t{s.N} * s.H * s.W * s.C, ++stream);
      auto w = random_vector(int64_t{s.O} * s.C * 9, ++stream, 0.05f), b = random_vector(s.O, ++stream);
      auto conv = ops().make_conv2d(s);
      std::vector<float> out(static_cast<size_t>(s.N) * s.out_h() * s.out_w() * s.O);
      conv->forward(out.data(), false, x.data(), w.data(), b.data(), 1);
      const std::vector<double> want = test::conv_reference(s, x, w, b);
      BOOST_TEST(rel_error(out, want) < 1e-5);
      // accumulate: out += conv(x)
      std::vector<float> acc(out.size(), 0.5f);
      conv->forward(acc.data(), true, x.data(), w.data(), b.data(), 1);
      std::vector<double> want_acc(want);
      for (double& v : want_acc) v += 0.5;
      BOOST_TEST(rel_error(acc, want_acc) < 1e-5);
    }
  }
}

// dx, dw and db of a convolution on `backend` against plain loops in double, then with
// accumulation (din when asked, dw and db always). Returns dx and dw of the first pass.
std::pair<std::vector<float>, std::vector<float>> check_conv_backward(Ops& backend, const ConvSpec& s) {
  const int Ho = s.out_h(), Wo = s.out_w();
  auto x = random_vector(int64_t{s.N} * s.H * s.W * s.C, 7), w = random_vector(int64_t{s.O} * s.C * 9, 8, 0.05f);
  auto dy = random_vector(int64_t{s.N} * Ho * Wo * s.O, 9);
  std::vector<double> dx_ref(x.size(), 0.0), dw_ref(w.size(), 0.0), db_ref(s.O, 0.0);
  for (int n = 0; n < s.N; ++n)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int o = 0; o < s.O; ++o) {
          const double g = dy[((static_cast<size_t>(n) * Ho + oy) * Wo + ox) * s.O + o];
          db_ref[o] += g;
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = oy * s.stride + ky - s.pad_top, ix = ox * s.stride + kx - s.pad_left;
              if (iy < 0 || ix < 0 || iy >= s.H || ix >= s.W) continue;
              for (int c = 0; c < s.C; ++c) {
                const size_t xi = ((static_cast<size_t>(n) * s.H + iy) * s.W + ix) * s.C + c;
                const size_t wi = ((static_cast<size_t>(o) * s.C + c) * 3 + ky) * 3 + kx;
                dx_ref[xi] += g * w[wi];
                dw_ref[wi] += g * x[xi];
              }
            }
        }
  auto conv = backend.make_conv2d(s);
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(s.O, 0.0f);
  conv->backward(dx.data(), false, dw.data(), db.data(), dy.data(), x.data(), w.data(), 1);
  BOOST_TEST(rel_error(dx, dx_ref) < 1e-5);
  BOOST_TEST(rel_error(dw, dw_ref) < 1e-5);
  BOOST_TEST(rel_error(db, db_ref) < 1e-5);
  const auto first = std::make_pair(dx, dw);
  // Parameter gradients accumulate; din accumulates when asked.
  std::vector<float> dx2(x.size(), 1.0f);
  conv->backward(dx2.data(), true, dw.data(), db.data(), dy.data(), x.data(), w.data(), 1);
  for (double& v : dx_ref) v += 1.0;
  for (double& v : dw_ref) v *= 2.0;
  for (double& v : db_ref) v *= 2.0;
  BOOST_TEST(rel_error(dx2, dx_ref) < 1e-5);
  BOOST_TEST(rel_error(dw, dw_ref) < 1e-5);
  BOOST_TEST(rel_error(db, db_ref) < 1e-5);
  return first;
}

}  // namespace

BOOST_AUTO_TEST_CASE(conv_backward_matches_plain_loops) {
  for (const ConvSpec& s : {conv3x3(2, 8, 64, 32), downsample(2, 8, 32)}) check_conv_backward(ops(), s);
}

// The Winograd path (core/cpu/conv2d_winograd.h): 32x32 and 64x64 run it for forward and
// backward data on every CPU, and for backward weights where default_winograd_sizes()
// says so. Each pass matches the plain loops, and differs from the direct kernels' result
// (so Winograd did run) by no more than its rounding.
BOOST_AUTO_TEST_CASE(winograd_convs_match_plain_loops_and_the_direct_kernels) {
  const std::unique_ptr<Ops> direct = make_cpu_ops(0, Precision::kFp32, false);
  for (const ConvSpec& s : {conv3x3(2, 32, 128, 128), conv3x3(1, 64, 64, 64)}) {
    BOOST_TEST_CONTEXT(s.H << "x" << s.W << " " << s.C << "->" << s.O) {
      BOOST_REQUIRE(winograd_passes(s, default_winograd_sizes()).data);
      const auto wino = check_conv_backward(ops(), s), plain = check_conv_backward(*direct, s);
      BOOST_TEST(wino.first != plain.first);
      BOOST_TEST(rel_error(wino.first, std::vector<double>(plain.first.begin(), plain.first.end())) < 1e-5);
      if (winograd_passes(s, default_winograd_sizes()).weights) BOOST_TEST(wino.second != plain.second);
      auto x = random_vector(int64_t{s.N} * s.H * s.W * s.C, 11), w = random_vector(int64_t{s.O} * s.C * 9, 12, 0.05f);
      auto b = random_vector(s.O, 13);
      std::vector<float> a(static_cast<size_t>(s.N) * s.H * s.W * s.O), c(a.size());
      ops().make_conv2d(s)->forward(a.data(), false, x.data(), w.data(), b.data(), 1);
      direct->make_conv2d(s)->forward(c.data(), false, x.data(), w.data(), b.data(), 1);
      BOOST_TEST(a != c);
      BOOST_TEST(rel_error(a, std::vector<double>(c.begin(), c.end())) < 1e-5);
    }
  }
}

// Sampling promises images that do not depend on the batch they are drawn in: each
// image's convolution output is the same bits at batch 1 and batch 3, direct or Winograd.
BOOST_AUTO_TEST_CASE(conv_output_of_an_image_does_not_depend_on_the_batch) {
  for (const ConvSpec& one : {conv3x3(1, 32, 128, 128), conv3x3(1, 16, 128, 256), downsample(1, 32, 128)}) {
    ConvSpec three = one;
    three.N = 3;
    const int64_t in_n = int64_t{one.H} * one.W * one.C, out_n = int64_t{one.out_h()} * one.out_w() * one.O;
    auto x = random_vector(3 * in_n, 21), w = random_vector(int64_t{one.O} * one.C * 9, 22, 0.05f);
    auto b = random_vector(one.O, 23);
    std::vector<float> batch(3 * out_n), single(out_n);
    ops().make_conv2d(three)->forward(batch.data(), false, x.data(), w.data(), b.data(), 1);
    ops().make_conv2d(one)->forward(single.data(), false, x.data() + in_n, w.data(), b.data(), 1);
    BOOST_TEST_INFO(one.H << "x" << one.W << " " << one.C << "->" << one.O << " stride " << one.stride);
    BOOST_TEST(std::equal(single.begin(), single.end(), batch.begin() + out_n));
  }
}

BOOST_AUTO_TEST_CASE(conv_reorders_weights_only_when_they_change) {
  const ConvSpec s = conv3x3(1, 4, 32, 32);
  auto x = random_vector(16 * 32, 1), w = random_vector(32 * 32 * 9, 2), b = random_vector(32, 3);
  auto conv = ops().make_conv2d(s);
  std::vector<float> a(16 * 32), c(16 * 32);
  conv->forward(a.data(), false, x.data(), w.data(), b.data(), 5);
  w[0] += 1.0f;  // same version: the cached layout is used (documented contract)
  conv->forward(c.data(), false, x.data(), w.data(), b.data(), 5);
  BOOST_TEST(a == c);
  conv->forward(c.data(), false, x.data(), w.data(), b.data(), 6);  // new version: picked up
  BOOST_TEST(a != c);
}

BOOST_AUTO_TEST_CASE(linear_matches_plain_loops) {
  const int M = 100, C = 64, O = 48;
  auto x = random_vector(M * C, 1), w = random_vector(O * C, 2), b = random_vector(O, 3);
  std::vector<float> out(M * O);
  ops().linear_forward(out.data(), false, x.data(), w.data(), b.data(), M, C, O);
  const std::vector<double> want = test::linear_reference(x, w, b, M, C, O);
  BOOST_TEST(rel_error(out, want) < 1e-6);
}

BOOST_AUTO_TEST_CASE(attention_matches_plain_softmax) {
  const int N = 2, L = 64, C = 32;
  auto q = random_vector(N * L * C, 1, 2.0f), k = random_vector(N * L * C, 2, 2.0f), v = random_vector(N * L * C, 3);
  std::vector<float> a(N * L * C), p(N * L * L);
  ops().attention_forward(a.data(), p.data(), q.data(), k.data(), v.data(), N, L, C);
  const std::vector<double> want = test::attention_reference(q, k, v, N, L, C);
  BOOST_TEST(rel_error(a, want) < 1e-6);
}

BOOST_AUTO_TEST_CASE(groupnorm_matches_plain_loops) {
  const int N = 2, HW = 64, C = 128, G = 32;
  auto x = random_vector(N * HW * C, 1, 3.0f), w = random_vector(C, 2), b = random_vector(C, 3);
  for (float& v : x) v += 5.0f;  // a large mean: the variance must not cancel badly
  std::vector<float> out(x.size()), mean(N * G), rstd(N * G);
  for (bool swish : {false, true}) {
    ops().groupnorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(),
                            {N, HW, C, G, swish ? Activation::kSwish : Activation::kNone});
    const std::vector<double> want = test::groupnorm_reference(x, w, b, N, HW, C, G, swish);
    BOOST_TEST(rel_error(out, want) < 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(fast_exp_is_accurate) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.00137) {
    const double want = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::fabs(expf_fast(static_cast<float>(x)) - want) / want);
  }
  BOOST_TEST(worst < 3e-7);  // about 2.5 ulp of float32
  BOOST_TEST(expf_fast(-200.0f) >= 0.0f);
  BOOST_TEST(std::isfinite(expf_fast(200.0f)));
}

BOOST_AUTO_TEST_CASE(dropout_masks_do_not_depend_on_how_the_batch_is_split) {
  const int N = 4;
  const int64_t per = 1000;
  std::vector<float> whole(N * per, 1.0f), halves(N * per, 1.0f);
  const DropoutKey key{11, 2, 30, 0};
  ops().dropout_apply(whole.data(), 0.25f, key, N, per);
  DropoutKey second = key;
  second.example_base = 2;
  ops().dropout_apply(halves.data(), 0.25f, key, 2, per);
  ops().dropout_apply(halves.data() + 2 * per, 0.25f, second, 2, per);
  BOOST_TEST(whole == halves);
  int kept = 0;
  for (float v : whole) {
    BOOST_TEST((v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6f));
    kept += v != 0.0f;
  }
  BOOST_TEST(std::fabs(kept / double(N * per) - 0.75) < 0.03);
  std::vector<float> other_step(N * per, 1.0f);
  DropoutKey next = key;
  next.step = 31;
  ops().dropout_apply(other_step.data(), 0.25f, next, N, per);
  BOOST_TEST(other_step != whole);
}

// The kept elements are exactly those whose Philox draw (core/rng.h) is >= p, whichever
// path ran (16 blocks per AVX-512 call where built, whole and partial groups, the tail).
BOOST_AUTO_TEST_CASE(dropout_masks_are_the_philox_draws) {
  const DropoutKey key{5, 9, 123, 40};
  for (const int64_t per : {int64_t{3}, int64_t{64}, int64_t{1000}, int64_t{64 * 7 + 6}}) {
    for (const float p : {0.1f, 0.5f, 0.999f}) {
      const int N = 3;
      std::vector<float> x = random_vector(N * per, 4), want = x;
      const float scale = 1.0f / (1.0f - p);
      for (int n = 0; n < N; ++n)
        for (int64_t e = 0; e < per; ++e) {
          const u32x4 r = philox4x32_10(philox_counter(Purpose::kDropout, key.layer, key.step,
                                                       key.example_base + n, static_cast<uint32_t>(e / 4)),
                                        philox_key(key.seed));
          want[n * per + e] *= uniform01(r[e % 4]) >= p ? scale : 0.0f;
        }
      ops().dropout_apply(x.data(), p, key, N, per);
      BOOST_TEST_INFO("per example " << per << ", p " << p);
      BOOST_TEST(std::memcmp(x.data(), want.data(), x.size() * sizeof(float)) == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(timestep_embedding_matches_formula) {
  const int N = 3, dim = 128;
  const std::vector<float> t{0.0f, 17.0f, 999.0f};
  std::vector<float> out(N * dim);
  ops().timestep_embedding(out.data(), t.data(), N, dim);
  const std::vector<double> want = test::timestep_embedding_reference(t, dim);
  BOOST_TEST(rel_error(out, want) < 1e-5);
}

// The conversion training uses (TrainStep: images_to_model on the loader's pixels):
// x / 127.5 - 1 in float, for every byte value. The endpoints are exact; every value is
// within half an ulp of 1 (2^-24, the rounding of the subtraction) of the exact one; and
// the bits are those of the float formula, so no backend or refactor changes a number.
BOOST_AUTO_TEST_CASE(images_to_model_is_x_over_127_5_minus_1) {
  std::vector<uint8_t> pixels(256 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i % 256);
  std::vector<float> out(pixels.size());
  ops().diffusion().images_to_model(out.data(), pixels.data(), static_cast<int64_t>(pixels.size()));
  BOOST_TEST(out[0] == -1.0f);
  BOOST_TEST(out[255] == 1.0f);
  for (size_t i = 0; i < pixels.size(); ++i) {
    const double exact = pixels[i] / 127.5 - 1.0;
    BOOST_TEST(std::fabs(out[i] - exact) <= std::ldexp(1.0, -24), "byte " << int(pixels[i]));
    BOOST_TEST(out[i] == static_cast<float>(pixels[i]) / 127.5f - 1.0f, "byte " << int(pixels[i]));
  }
}

// The registry (op_registry.h): every case's CPU forward against its plain reference.
BOOST_AUTO_TEST_CASE(every_registry_case_matches_its_plain_reference) {
  for (const test::OpCase& c : test::op_cases()) {
    BOOST_TEST_CONTEXT(c.label()) {
      BOOST_TEST((c.reference || !c.reference_elsewhere.empty()), "a case needs a reference");
      if (!c.reference) continue;  // checked by the suite reference_elsewhere names
      const auto t = test::run_case(ops(), c);
      const auto want = c.reference(c.tensors);
      for (const std::string& out : c.outputs) {
        BOOST_TEST_CONTEXT(out) {
          BOOST_REQUIRE(want.count(out) == 1u);
          const std::vector<double> got = t->result(out);
          BOOST_TEST(test::result_error(got, want.at(out)) <= c.reference_bound);
        }
      }
    }
  }
}

// Every method the backend interfaces declare (Ops in core/ops.h, DiffusionOps in
// core/diffusion_ops.h) has a registry case (or is used by every case to move tensors,
// or computes nothing), and every method a case names exists, in one interface only.
BOOST_AUTO_TEST_CASE(every_backend_method_has_a_registry_case) {
  const std::vector<test::DeclaredMethod> declared = test::declared_backend_methods();
  std::map<std::string, std::string> interface_of;
  std::map<std::string, int> per_interface;
  for (const test::DeclaredMethod& m : declared) {
    BOOST_TEST(interface_of.emplace(m.name, m.interface).second, m.name << " is declared twice");
    ++per_interface[m.interface];
  }
  BOOST_TEST(per_interface["Ops"] >= 30);  // the parser found the interfaces
  BOOST_TEST(per_interface["DiffusionOps"] >= 8);
  std::set<std::string> covered(test::methods_every_case_runs().begin(), test::methods_every_case_runs().end());
  covered.insert(test::methods_without_computation().begin(), test::methods_without_computation().end());
  for (const test::OpCase& c : test::op_cases()) {
    for (const std::string& m : c.methods) {
      BOOST_TEST(interface_of.count(m) == 1u, c.label() << ": no backend method " << m);
      covered.insert(m);
    }
  }
  for (const auto& [name, interface] : interface_of) {
    BOOST_TEST(covered.count(name) == 1u, interface << "::" << name << " has no case");
  }
}
