// device.precision bf16 on the CPU (issue 13): every case of the op registry
// (op_registry.h, the cifar10 and 256x256 models' shapes) run by a bf16 CpuOps against an
// fp32 CpuOps from the same inputs. The products (convolutions, linear layers,
// attention) must be within bf16's error and visibly not fp32 (so bf16 really ran);
// every other op must give fp32's bits, since bf16 changes nothing around the products.
#define BOOST_TEST_MODULE cpu_bf16
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/cpu/cpu_ops.h"
#include "op_registry.h"

using namespace ddpm;

namespace {

// Norm-wise relative error of a product's outputs and gradients in bf16: inputs rounded
// to 8 significant bits (relative error 2^-9 each) and fp32 accumulation give ~3e-3 on
// these shapes; attention's softmax gradient, a difference of nearly equal terms, ~1e-2.
constexpr double kBf16Bound = 2e-2;
// Below this the result cannot have come from bf16 inputs.
constexpr double kBf16Floor = 1e-4;

bool runs_a_product(const test::OpCase& c) {
  for (const std::string& m : c.methods) {
    if (m == "make_conv2d" || m.rfind("linear_", 0) == 0 || m.rfind("attention_", 0) == 0) return true;
  }
  return false;
}

}  // namespace

// The rounding of the products' inputs: nearest even on the bits, NaN kept a quiet NaN;
// a denormal input may also become a zero of its sign (the AVX512-BF16 instruction's
// rule, and oneDNN's). Dense spans (split over the threads) and strided rows alike.
BOOST_AUTO_TEST_CASE(to_bf16_rounds_to_nearest_even) {
  const auto want = [](uint32_t u) {
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  };
  const int64_t rows = 7, cols = 100003, ld = cols + 5;
  std::vector<uint32_t> bits(rows * ld);
  uint32_t state = 12345;
  for (uint32_t& b : bits) {
    state = state * 1664525u + 1013904223u;
    b = state ^ (state >> 13);
  }
  for (uint32_t special : {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xff812345u,
                           0x7f7fffffu, 0x3f808000u, 0x3f818000u, 0x00012345u, 0x80000001u})
    bits[special % bits.size()] = special;
  std::vector<float> src(bits.size());
  std::memcpy(src.data(), bits.data(), bits.size() * sizeof(float));
  CpuOps cpu(0, Precision::kFp32);
  for (const bool dense : {true, false}) {
    const int64_t stride = dense ? cols : ld;
    std::vector<uint16_t> out(rows * cols);
    cpu.to_bf16(out.data(), src.data(), rows, cols, stride);
    int64_t wrong = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const uint32_t u = bits[r * stride + c];
        const uint16_t got = out[r * cols + c];
        const bool denormal = (u & 0x7f800000u) == 0 && (u & 0x007fffffu) != 0;
        wrong += got != want(u) && !(denormal && got == ((u >> 16) & 0x8000u));
      }
    BOOST_TEST(wrong == 0, (dense ? "dense" : "strided") << ": " << wrong << " values rounded wrongly");
  }
}

BOOST_AUTO_TEST_CASE(products_within_bf16_error_and_everything_else_bitwise_fp32) {
  if (cpu_bf16_support() == CpuBf16Support::kNone) {
    std::printf("this CPU has no bf16 instructions (oneDNN ISA %s): CpuOps runs fp32, nothing to compare\n",
                cpu_isa_name());
    std::exit(77);  // ctest's SKIP_RETURN_CODE
  }
  const std::unique_ptr<Ops> fp32 = make_cpu_ops(0, Precision::kFp32);
  const std::unique_ptr<Ops> bf16 = make_cpu_ops(0, Precision::kBf16);
  BOOST_REQUIRE(bf16->precision() == Precision::kBf16);
  int products = 0;
  double worst = 0;
  for (const test::OpCase& c : test::op_cases()) {
    BOOST_TEST_CONTEXT(c.label()) {
      const auto want = test::run_case(*fp32, c);
      const auto got = test::run_case(*bf16, c);
      std::vector<std::string> compared = c.outputs;
      for (const std::string& d : c.backward_outputs()) compared.push_back(d);
      const bool product = runs_a_product(c);
      products += product;
      double case_worst = 0;
      for (const std::string& name : compared) {
        BOOST_TEST_INFO(name);
        const double err = test::result_error(got->result(name), want->result(name));
        case_worst = std::max(case_worst, err);
        if (product) {
          BOOST_TEST(err <= kBf16Bound);
        } else {
          BOOST_TEST(err == 0.0);
        }
      }
      if (product) {
        BOOST_TEST(case_worst >= kBf16Floor, "bf16 left " << c.label() << " at fp32's accuracy: not run in bf16?");
        BOOST_TEST_MESSAGE(c.label() << ": worst bf16 error " << case_worst);
      }
      worst = std::max(worst, product ? case_worst : 0.0);
    }
  }
  BOOST_TEST(products >= 10);
  BOOST_TEST_MESSAGE(products << " product cases, worst norm-wise relative error " << worst);
}
