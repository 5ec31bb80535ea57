// Shared pieces of the GPU suites: a main() that reports "skipped" (exit code 77,
// registered as ctest's SKIP_RETURN_CODE) when no CUDA device is present, device
// buffers (core/buffer.h) paired on both backends, and the error bounds of each precision.
//
// Each suite compares CudaOps with CpuOps (the reference of every kernel) on the same
// inputs. Bounds are norm-wise relative errors ||gpu - cpu|| / ||cpu||:
//   fp32  different summation orders only: ~1e-6, up to ~1e-5 over 65536-term sums
//   tf32  10-bit mantissa inputs to products: ~1e-3
//   bf16  8-bit mantissa inputs (and bf16 conv outputs): ~1e-2
#pragma once

#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/common.h"
#include "core/ops.h"
#include "gradcheck.h"

namespace ddpm::gputest {

constexpr int kSkipCode = 77;

inline bool gpu_present() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

inline const std::vector<std::string>& precisions() {
  static const std::vector<std::string> all{"fp32", "tf32", "bf16"};
  return all;
}

// The bound for one matrix-product-like op (conv, linear, attention) in a precision.
inline double op_bound(const std::string& precision) {
  if (precision == "fp32") return 5e-5;
  if (precision == "tf32") return 5e-3;
  return 2.5e-2;
}

// Whole-network bounds (norm-wise over an output, or over the whole gradient buffer):
// many layers of one op's error each.
inline double net_bound(const std::string& precision) {
  if (precision == "fp32") return 3e-4;
  if (precision == "tf32") return 2e-2;
  return 8e-2;
}

// Bias gradients and other plain sums: the CPU adds in float, in sequence.
constexpr double kSumBound = 1e-4;

inline Ops& cpu() {
  static std::unique_ptr<Ops> ops = make_cpu_ops();
  return *ops;
}

// One CudaOps per precision, made on first use and never destroyed (destroying cuDNN
// and cuBLAS handles after the CUDA runtime has shut down at exit is not safe).
inline Ops& gpu(const std::string& precision = "fp32") {
  static Ops* by_precision[3] = {nullptr, nullptr, nullptr};
  const int i = precision == "fp32" ? 0 : precision == "tf32" ? 1 : 2;
  if (!by_precision[i]) by_precision[i] = make_cuda_ops(0, parse_precision(precision)).release();
  return *by_precision[i];
}

// The same host data in a CPU and a GPU buffer.
struct Pair {
  Buffer cpu, gpu;
  Pair(Ops& g, const std::vector<float>& host) : cpu(gputest::cpu(), host), gpu(g, host) {}
  Pair(Ops& g, int64_t n) : cpu(gputest::cpu(), n), gpu(g, n) {}  // zero-filled
};

inline double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double d = 0, n = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = static_cast<double>(got[i]) - want[i];
    d += e * e;
    n += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(d / std::max(n, 1e-300));
}

inline size_t count_different(const std::vector<float>& a, const std::vector<float>& b) {
  size_t k = 0;
  for (size_t i = 0; i < a.size(); ++i) k += a[i] != b[i];
  return k;
}

inline std::vector<float> random(int64_t n, uint32_t stream, float scale = 1.0f) {
  return test::random_vector(n, stream, scale);
}

}  // namespace ddpm::gputest

// The suite's main(): skipped (not passed) without a GPU.
#define DDPM_GPU_TEST_MAIN()                                                                         \
  int main(int argc, char** argv) {                                                                  \
    if (!ddpm::gputest::gpu_present()) {                                                             \
      std::printf("no CUDA device: %s skipped\n", argv[0]);                                          \
      return ddpm::gputest::kSkipCode;                                                               \
    }                                                                                                \
    return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);                           \
  }
