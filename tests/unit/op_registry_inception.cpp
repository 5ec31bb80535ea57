// The op registry's cases for the evaluation's Inception network (pytorch-fid's FID
// Inception, src/eval/inception.cpp) on its shapes at batch 1 or 2, next to tiny ones:
// the rectangular and strided convolutions, ReLU, max and average pooling over the
// in-bounds taps, the global average pool, the classifier and the channel copies that
// concatenate the branches and slice out the sFID features. All but the convolutions
// and the classifier are forward only (no backward, so test_gradcheck skips them).
#include "op_registry_cases.h"
#include "reference_ops.h"

namespace ddpm::test::cases {
namespace {

// A forward-only case: y from x, checked against a plain reference of y.
OpCase forward_case(std::vector<std::string> methods, std::string shape, std::vector<float> x, std::vector<float> y,
                    RunFn forward, std::function<std::vector<double>(const HostTensors&)> reference) {
  OpCase c;
  c.methods = std::move(methods);
  c.shape = std::move(shape);
  c.tensors = {{"x", std::move(x)}, {"y", std::move(y)}};
  c.forward = std::move(forward);
  c.outputs = {"y"};
  c.reference = [reference](const HostTensors& h) { return Results{{"y", reference(h)}}; };
  return c;
}

ConvSpec conv(int N, int H, int W, int C, int O) {
  ConvSpec s;
  s.N = N, s.H = H, s.W = W, s.C = C, s.O = O;
  return s;
}

void add_convolutions(std::vector<OpCase>& cases, Data& data) {
  add_conv(cases, data, "tiny 1x3 padded (0, 1)", conv(2, 5, 6, 3, 4).with_kernel(1, 3, 1, 0, 1), 24);
  add_conv(cases, data, "tiny 7x1 padded (3, 0)", conv(2, 8, 5, 3, 4).with_kernel(7, 1, 1, 3, 0), 24);
  add_conv(cases, data, "tiny 3x3 stride 2 unpadded", conv(2, 7, 6, 3, 4).with_kernel(3, 3, 2, 0, 0), 24);
  add_conv(cases, data, "inception Conv2d_1a_3x3", conv(1, 299, 299, 3, 32).with_kernel(3, 3, 2, 0, 0), 4);
  add_conv(cases, data, "inception Conv2d_3b_1x1", conv(2, 73, 73, 64, 80).with_kernel(1, 1, 1, 0, 0), 4);
  add_conv(cases, data, "inception Mixed_5b.branch5x5_2", conv(1, 35, 35, 48, 64).with_kernel(5, 5, 1, 2, 2), 4);
  add_conv(cases, data, "inception Mixed_6b.branch7x7_2", conv(1, 17, 17, 128, 128).with_kernel(1, 7, 1, 0, 3), 4);
  add_conv(cases, data, "inception Mixed_6b.branch7x7_3", conv(1, 17, 17, 128, 192).with_kernel(7, 1, 1, 3, 0), 4);
  add_conv(cases, data, "inception Mixed_7a.branch7x7x3_4", conv(1, 17, 17, 192, 192).with_kernel(3, 3, 2, 0, 0), 4);
  add_conv(cases, data, "inception Mixed_7b.branch3x3_2a", conv(1, 8, 8, 384, 384).with_kernel(1, 3, 1, 0, 1), 4);
  add_conv(cases, data, "inception Mixed_7b.branch3x3_2b", conv(1, 8, 8, 384, 384).with_kernel(3, 1, 1, 1, 0), 4);
  add_linear(cases, data, "inception fc", 2, 2048, 1008, 6);
}

void add_pools(std::vector<OpCase>& cases, Data& data) {
  struct Pool {
    std::string where;
    PoolSpec spec;
    bool max;
  };
  const Pool pools[] = {
      {"tiny 3x3 stride 2", {2, 7, 6, 3, 3, 2, 0}, true},
      {"tiny 3x3 stride 1 padded 1", {2, 5, 6, 3, 3, 1, 1}, true},
      {"inception maxpool1", {2, 147, 147, 64, 3, 2, 0}, true},
      {"inception Mixed_6a pool", {2, 35, 35, 288, 3, 2, 0}, true},
      {"inception Mixed_7c.branch_pool", {2, 8, 8, 2048, 3, 1, 1}, true},
      {"tiny 3x3 stride 1 padded 1", {2, 5, 6, 3, 3, 1, 1}, false},
      {"tiny 2x2 stride 2 padded 1: one-tap corners", {2, 5, 6, 3, 2, 2, 1}, false},
      {"inception Mixed_5b.branch_pool", {2, 35, 35, 192, 3, 1, 1}, false},
      {"inception Mixed_6b.branch_pool", {2, 17, 17, 768, 3, 1, 1}, false},
      {"inception Mixed_7b.branch_pool", {2, 8, 8, 1280, 3, 1, 1}, false},
  };
  for (const Pool& p : pools) {
    const PoolSpec s = p.spec;
    const bool max = p.max;
    const int64_t n_in = int64_t{s.N} * s.H * s.W * s.C, n_out = int64_t{s.N} * s.out_h() * s.out_w() * s.C;
    cases.push_back(forward_case(
        {max ? "maxpool_forward" : "avgpool_forward"},
        p.where + " " + dims({s.N, s.H, s.W, s.C}) + " k" + std::to_string(s.K) + " s" + std::to_string(s.stride) +
            " p" + std::to_string(s.pad),
        data(n_in), zeros(n_out),
        [s, max](Ops& ops, BackendTensors& t) {
          if (max) ops.maxpool_forward(t["y"], t["x"], s);
          else ops.avgpool_forward(t["y"], t["x"], s);
        },
        [s, max](const HostTensors& h) { return pool_reference(s, h.at("x"), max); }));
    cases.back().reference_bound = max ? 0.0 : 1e-6;  // a float sum of at most K^2 taps
    cases.back().cuda_bound = 0;                      // the same taps in the same order
  }
}

void add_reductions_and_copies(std::vector<OpCase>& cases, Data& data) {
  for (const auto& shape : {std::tuple{"tiny", 2, 15, 7}, std::tuple{"inception pool_3 of Mixed_7c", 2, 64, 2048}}) {
    // Plain copies: lambdas cannot capture structured bindings before C++20 (clang 14).
    const char* where = std::get<0>(shape);
    const int N = std::get<1>(shape), HW = std::get<2>(shape), C = std::get<3>(shape);
    cases.push_back(forward_case(
        {"global_avgpool_forward"}, std::string(where) + " " + dims({N, HW, C}), data(int64_t{N} * HW * C),
        zeros(int64_t{N} * C),
        [=](Ops& ops, BackendTensors& t) { ops.global_avgpool_forward(t["y"], t["x"], N, HW, C); },
        [=](const HostTensors& h) { return global_avgpool_reference(h.at("x"), N, HW, C); }));
    cases.back().reference_bound = 1e-7;  // a double sum rounded once
    cases.back().cuda_bound = 1e-7;       // double sums in another order
  }
  // ReLU out of place, and in place as every convolution unit runs it.
  const int64_t tiny = 2 * 5 * 6 * 3, large = int64_t{2} * 147 * 147 * 64;
  auto relu = [](const HostTensors& h) {
    std::vector<double> y = widen(h.at("x"));
    for (double& v : y) v = std::max(v, 0.0);
    return y;
  };
  cases.push_back(forward_case(
      {"relu_forward"}, "tiny 2x5x6x3", data(tiny), zeros(tiny),
      [=](Ops& ops, BackendTensors& t) { ops.relu_forward(t["y"], t["x"], tiny); }, relu));
  cases.push_back(forward_case(
      {"relu_forward", "copy"}, "inception Conv2d_2b_3x3 2x147x147x64, in place", data(large), zeros(large),
      [=](Ops& ops, BackendTensors& t) {
        ops.copy(t["y"], t["x"], large);
        ops.relu_forward(t["y"], t["y"], large);
      },
      relu));
  // Channel copies: a part of a concatenation written between other channels (which
  // stay), Mixed_5b's four branches concatenated, and the 7 sFID channels of 192.
  struct Copy {
    std::string where;
    int64_t M;
    int out_ch, out_first, in_ch, in_first, count;
  };
  const Copy copies[] = {{"tiny, columns 2..5 of 6 into 1..4 of 8", 6, 8, 1, 6, 2, 4},
                         {"inception Mixed_5b branch5x5 (64 of 256 at 64)", 2 * 35 * 35, 256, 64, 64, 0, 64},
                         {"inception Mixed_5b branch_pool (32 of 256 at 224)", 2 * 35 * 35, 256, 224, 32, 0, 32},
                         {"inception sFID: 7 of Mixed_6d.branch1x1's 192", 2 * 17 * 17, 7, 0, 192, 0, 7}};
  for (const Copy& k : copies) {
    cases.push_back(forward_case(
        {"copy_channels"}, k.where, data(k.M * k.in_ch), data(k.M * k.out_ch),
        [k](Ops& ops, BackendTensors& t) {
          ops.copy_channels(t["y"], k.out_ch, k.out_first, t["x"], k.in_ch, k.in_first, k.count, k.M);
        },
        [k](const HostTensors& h) {
          return copy_channels_reference(h.at("y"), k.out_ch, k.out_first, h.at("x"), k.in_ch, k.in_first, k.count,
                                         k.M);
        }));
    cases.back().reference_bound = 0;
    cases.back().cuda_bound = 0;
  }
}

}  // namespace

void add_inception_cases(std::vector<OpCase>& cases, Data& data) {
  add_convolutions(cases, data);
  add_pools(cases, data);
  add_reductions_and_copies(cases, data);
}

}  // namespace ddpm::test::cases
