// The CUDA backend's layer kernels against the CPU backend on the shapes the cifar10
// and 256x256 models use, in each precision: convolutions (cuDNN) forward and both
// backward passes, linear layers (cuBLAS), GroupNorm(+swish) and attention.
#define BOOST_TEST_MODULE gpu_layers
#include "gpu_test.h"

using namespace ddpm;
using namespace ddpm::gputest;
using test::conv3x3;
using test::downsample;

namespace {


const ConvSpec kConvShapes[] = {
    conv3x3(2, 32, 3, 128),    // cifar10 conv_in
    conv3x3(2, 32, 128, 128),  // cifar10 level 0
    conv3x3(2, 16, 128, 256),  // cifar10 level 1 conv1
    conv3x3(2, 16, 256, 256),  // cifar10 level 1
    downsample(2, 32, 128),    // cifar10 downsample 32 -> 16
    conv3x3(2, 8, 256, 256),   // cifar10 levels 2-3
    conv3x3(2, 32, 128, 3),    // conv_out
    conv3x3(1, 64, 256, 256),  // 256x256 model level 2 (64x64)
    conv3x3(1, 8, 512, 512),   // 256x256 model level 5 (8x8)
    downsample(1, 16, 512),    // 256x256 model downsample 16 -> 8
    conv3x3(1, 256, 128, 128), // 256x256 model level 0 (full resolution)
};

std::string describe(const ConvSpec& s) {
  return cat(s.N, "x", s.H, "x", s.W, "x", s.C, " -> ", s.O, " k", s.KH, "x", s.KW, " s", s.stride);
}

}  // namespace

BOOST_AUTO_TEST_CASE(conv_forward_and_backward_match_cpu_in_every_precision) {
  uint32_t stream = 0;
  for (const std::string& prec : precisions()) {
    for (const ConvSpec& s : kConvShapes) {
      Ops& g = gpu(prec);
      const int64_t n_in = int64_t{s.N} * s.H * s.W * s.C, n_out = int64_t{s.N} * s.out_h() * s.out_w() * s.O;
      const int64_t n_w = s.weight_count();
      const float w_scale = 1.0f / std::sqrt(static_cast<float>(s.C * s.KH * s.KW));
      Pair x(g, random(n_in, ++stream)), w(g, random(n_w, ++stream, w_scale)), b(g, random(s.O, ++stream, 0.1f));
      Pair dout(g, random(n_out, ++stream)), prior_out(g, random(n_out, ++stream));
      Pair din(g, random(n_in, ++stream)), dw(g, random(n_w, ++stream)), db(g, random(s.O, ++stream));
      auto cc = cpu().make_conv2d(s);
      auto gc = g.make_conv2d(s);
      const double bound = op_bound(prec);

      // Forward, assigning and accumulating (the residual path).
      for (bool acc : {false, true}) {
        cc->forward(prior_out.cpu.get(), acc, x.cpu.get(), w.cpu.get(), b.cpu.get(), 1);
        gc->forward(prior_out.gpu.get(), acc, x.gpu.get(), w.gpu.get(), b.gpu.get(), 1);
        const double e = rel_error(prior_out.gpu.host(), prior_out.cpu.host());
        BOOST_TEST_INFO(prec << " forward " << describe(s) << " accumulate " << acc);
        BOOST_TEST(e <= bound);
      }
      // Backward: din accumulating, then assigning; dw and db always accumulate.
      for (bool acc : {true, false}) {
        cc->backward(din.cpu.get(), acc, dw.cpu.get(), db.cpu.get(), dout.cpu.get(), x.cpu.get(), w.cpu.get(), 1);
        gc->backward(din.gpu.get(), acc, dw.gpu.get(), db.gpu.get(), dout.gpu.get(), x.gpu.get(), w.gpu.get(), 1);
        BOOST_TEST_INFO(prec << " backward " << describe(s) << " accumulate " << acc);
        BOOST_TEST(rel_error(din.gpu.host(), din.cpu.host()) <= bound);
        BOOST_TEST(rel_error(dw.gpu.host(), dw.cpu.host()) <= bound);
        BOOST_TEST(rel_error(db.gpu.host(), db.cpu.host()) <= kSumBound);  // fp32 sums in every precision
      }
      // No din (conv_in): only the parameter gradients.
      cc->backward(nullptr, false, dw.cpu.get(), db.cpu.get(), dout.cpu.get(), x.cpu.get(), w.cpu.get(), 1);
      gc->backward(nullptr, false, dw.gpu.get(), db.gpu.get(), dout.gpu.get(), x.gpu.get(), w.gpu.get(), 1);
      BOOST_TEST_INFO(prec << " backward without din " << describe(s));
      BOOST_TEST(rel_error(dw.gpu.host(), dw.cpu.host()) <= bound);
    }
  }
}

BOOST_AUTO_TEST_CASE(conv_reorders_weights_when_their_version_changes) {
  const ConvSpec s = conv3x3(1, 8, 32, 32);
  Ops& g = gpu();
  const int64_t n_in = 8 * 8 * 32, n_w = 32 * 32 * 9;
  Pair x(g, random(n_in, 1)), w(g, random(n_w, 2, 0.06f)), b(g, random(32, 3));
  Buffer out_c(cpu(), n_in), out_g(g, n_in);
  auto cc = cpu().make_conv2d(s);
  auto gc = g.make_conv2d(s);
  gc->forward(out_g.get(), false, x.gpu.get(), w.gpu.get(), b.gpu.get(), 7);
  const std::vector<float> w2 = random(n_w, 4, 0.06f);
  g.upload(w.gpu.get(), w2.data(), n_w);
  cpu().upload(w.cpu.get(), w2.data(), n_w);
  gc->forward(out_g.get(), false, x.gpu.get(), w.gpu.get(), b.gpu.get(), 8);  // new version: new weights used
  cc->forward(out_c.get(), false, x.cpu.get(), w.cpu.get(), b.cpu.get(), 8);
  BOOST_TEST(rel_error(out_g.host(), out_c.host()) <= op_bound("fp32"));
}

BOOST_AUTO_TEST_CASE(linear_forward_and_backward_match_cpu_in_every_precision) {
  struct Shape {
    int64_t M;
    int C, O;
  };
  const Shape shapes[] = {
      {4, 128, 512},        // temb.dense.0 (cifar10 / 256x256, ch 128)
      {4, 512, 512},        // temb.dense.1
      {4, 512, 256},        // temb_proj
      {2 * 256, 256, 256},  // cifar10 attention q/k/v/proj_out at 16x16
      {2 * 256, 512, 512},  // 256x256 attention at 16x16
      {2 * 1024, 256, 128}, // nin_shortcut, 32x32
      {2 * 64, 512, 256},   // nin_shortcut, 8x8
  };
  uint32_t stream = 100;
  for (const std::string& prec : precisions()) {
    Ops& g = gpu(prec);
    for (const Shape& s : shapes) {
      const float ws = 1.0f / std::sqrt(static_cast<float>(s.C));
      Pair in(g, random(s.M * s.C, ++stream)), w(g, random(int64_t{s.O} * s.C, ++stream, ws));
      Pair b(g, random(s.O, ++stream)), out(g, random(s.M * s.O, ++stream)), dout(g, random(s.M * s.O, ++stream));
      Pair din(g, random(s.M * s.C, ++stream)), dw(g, random(int64_t{s.O} * s.C, ++stream)), db(g, random(s.O, ++stream));
      for (bool acc : {false, true}) {
        cpu().linear_forward(out.cpu.get(), acc, in.cpu.get(), w.cpu.get(), b.cpu.get(), s.M, s.C, s.O);
        g.linear_forward(out.gpu.get(), acc, in.gpu.get(), w.gpu.get(), b.gpu.get(), s.M, s.C, s.O);
        BOOST_TEST_INFO(prec << " linear forward M " << s.M << " C " << s.C << " O " << s.O << " acc " << acc);
        BOOST_TEST(rel_error(out.gpu.host(), out.cpu.host()) <= op_bound(prec));
        cpu().linear_backward(din.cpu.get(), acc, dw.cpu.get(), db.cpu.get(), dout.cpu.get(), in.cpu.get(),
                              w.cpu.get(), s.M, s.C, s.O);
        g.linear_backward(din.gpu.get(), acc, dw.gpu.get(), db.gpu.get(), dout.gpu.get(), in.gpu.get(), w.gpu.get(),
                          s.M, s.C, s.O);
        BOOST_TEST(rel_error(din.gpu.host(), din.cpu.host()) <= op_bound(prec));
        BOOST_TEST(rel_error(dw.gpu.host(), dw.cpu.host()) <= op_bound(prec));
        BOOST_TEST(rel_error(db.gpu.host(), db.cpu.host()) <= kSumBound);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(groupnorm_forward_and_backward_match_cpu) {
  struct Shape {
    int N, HW, C;
  };
  // 32 groups at 128-512 channels, cifar10 and 256x256 resolutions.
  const Shape shapes[] = {{2, 1024, 128}, {2, 256, 256}, {2, 64, 512}, {1, 4096, 256}, {1, 65536, 128}, {3, 16, 512}};
  uint32_t stream = 200;
  Ops& g = gpu();
  for (const Shape& s : shapes) {
    for (bool swish : {false, true}) {
      const int64_t n = int64_t{s.N} * s.HW * s.C;
      // An offset mean, as real activations have: the variance formula must not cancel.
      std::vector<float> xh = random(n, ++stream, 2.0f);
      for (float& v : xh) v += 3.0f;
      Pair x(g, xh), w(g, random(s.C, ++stream)), b(g, random(s.C, ++stream));
      Pair out(g, n), mean(g, int64_t{s.N} * 32), rstd(g, int64_t{s.N} * 32);
      cpu().groupnorm_forward(out.cpu.get(), mean.cpu.get(), rstd.cpu.get(), x.cpu.get(), w.cpu.get(), b.cpu.get(),
                              {s.N, s.HW, s.C, 32, swish ? Activation::kSwish : Activation::kNone});
      g.groupnorm_forward(out.gpu.get(), mean.gpu.get(), rstd.gpu.get(), x.gpu.get(), w.gpu.get(), b.gpu.get(),
                          {s.N, s.HW, s.C, 32, swish ? Activation::kSwish : Activation::kNone});
      BOOST_TEST_INFO("groupnorm " << s.N << "x" << s.HW << "x" << s.C << " swish " << swish);
      BOOST_TEST(rel_error(out.gpu.host(), out.cpu.host()) <= 2e-6);
      BOOST_TEST(rel_error(mean.gpu.host(), mean.cpu.host()) <= 1e-6);
      BOOST_TEST(rel_error(rstd.gpu.host(), rstd.cpu.host()) <= 1e-6);

      Pair dout(g, random(n, ++stream)), din(g, random(n, ++stream)), dw(g, random(s.C, ++stream)),
          db(g, random(s.C, ++stream));
      for (bool acc : {false, true}) {
        cpu().groupnorm_backward(din.cpu.get(), acc, dw.cpu.get(), db.cpu.get(), dout.cpu.get(), x.cpu.get(),
                                 mean.cpu.get(), rstd.cpu.get(), w.cpu.get(), b.cpu.get(),
                                 {s.N, s.HW, s.C, 32, swish ? Activation::kSwish : Activation::kNone});
        g.groupnorm_backward(din.gpu.get(), acc, dw.gpu.get(), db.gpu.get(), dout.gpu.get(), x.gpu.get(),
                             mean.gpu.get(), rstd.gpu.get(), w.gpu.get(), b.gpu.get(),
                             {s.N, s.HW, s.C, 32, swish ? Activation::kSwish : Activation::kNone});
        BOOST_TEST_INFO("groupnorm backward " << s.N << "x" << s.HW << "x" << s.C << " swish " << swish << " acc "
                                              << acc);
        BOOST_TEST(rel_error(din.gpu.host(), din.cpu.host()) <= 1e-5);
        BOOST_TEST(rel_error(dw.gpu.host(), dw.cpu.host()) <= 1e-5);
        BOOST_TEST(rel_error(db.gpu.host(), db.cpu.host()) <= kSumBound);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(attention_matches_cpu_in_every_precision) {
  struct Shape {
    int N, L, C;
  };
  // 16x16 attention with 256 (cifar10) and 512 (256x256) channels; the 4x4 and 8x8 middles.
  const Shape shapes[] = {{2, 256, 256}, {2, 256, 512}, {3, 16, 256}, {2, 64, 512}};
  uint32_t stream = 300;
  for (const std::string& prec : precisions()) {
    Ops& g = gpu(prec);
    for (const Shape& s : shapes) {
      const int64_t n = int64_t{s.N} * s.L * s.C, np = int64_t{s.N} * s.L * s.L;
      Pair q(g, random(n, ++stream)), k(g, random(n, ++stream)), v(g, random(n, ++stream)), da(g, random(n, ++stream));
      Pair a(g, n), p(g, np), dq(g, n), dk(g, n), dv(g, n);
      cpu().attention_forward(a.cpu.get(), p.cpu.get(), q.cpu.get(), k.cpu.get(), v.cpu.get(), s.N, s.L, s.C);
      g.attention_forward(a.gpu.get(), p.gpu.get(), q.gpu.get(), k.gpu.get(), v.gpu.get(), s.N, s.L, s.C);
      BOOST_TEST_INFO(prec << " attention N " << s.N << " L " << s.L << " C " << s.C);
      BOOST_TEST(rel_error(p.gpu.host(), p.cpu.host()) <= 2 * op_bound(prec));
      BOOST_TEST(rel_error(a.gpu.host(), a.cpu.host()) <= 2 * op_bound(prec));
      // Backward from the CPU's p, so that only the backward kernels are compared.
      const std::vector<float> p_host = p.cpu.host();
      g.upload(p.gpu.get(), p_host.data(), np);
      cpu().attention_backward(dq.cpu.get(), dk.cpu.get(), dv.cpu.get(), da.cpu.get(), p.cpu.get(), q.cpu.get(),
                               k.cpu.get(), v.cpu.get(), s.N, s.L, s.C);
      g.attention_backward(dq.gpu.get(), dk.gpu.get(), dv.gpu.get(), da.gpu.get(), p.gpu.get(), q.gpu.get(),
                           k.gpu.get(), v.gpu.get(), s.N, s.L, s.C);
      BOOST_TEST(rel_error(dq.gpu.host(), dq.cpu.host()) <= 2 * op_bound(prec));
      BOOST_TEST(rel_error(dk.gpu.host(), dk.cpu.host()) <= 2 * op_bound(prec));
      BOOST_TEST(rel_error(dv.gpu.host(), dv.cpu.host()) <= 2 * op_bound(prec));
    }
  }
}

DDPM_GPU_TEST_MAIN()
