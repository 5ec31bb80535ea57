// Finite-difference gradient checking (Caffe's GradientChecker idea) for the CPU ops.
//
// A layer is checked through the scalar L = sum(out * R) with a fixed random R: the
// analytic gradient is backward(dout = R); the numeric one is the central difference
// (L(v + h) - L(v - h)) / 2h on a sample of elements, with L accumulated in double.
//
// Tolerance: every function in the model is smooth (no ReLU kinks), so the central
// difference has truncation error O(h^2) ~ 1e-4 relative at h = 1e-2, and float32
// round-off adds ~ 1e-7 * |L| / h. The check is norm-wise over the sampled elements,
// ||numeric - analytic|| / ||analytic|| <= 1e-2 (Caffe's default threshold); a wrong
// formula (a missing term, a transposed weight, a bad index) gives errors of order 1.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"

namespace ddpm::test {

// The model's convolution shapes: 3x3 stride 1 pad 1 on HW x HW, and the downsample.
inline ConvSpec conv3x3(int N, int HW, int C, int O) {
  ConvSpec s;
  s.N = N, s.H = s.W = HW, s.C = C, s.O = O;
  return s;
}
inline ConvSpec downsample(int N, int HW, int C) { return conv3x3(N, HW, C, C).as_downsample(); }

// Deterministic test data in [-scale, scale).
inline std::vector<float> random_vector(int64_t n, uint32_t stream, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += 4) {
    const u32x4 r = philox4x32_10(philox_counter(Purpose::kTest, 1, 0, stream, static_cast<uint32_t>(i / 4)),
                                  philox_key(42));
    for (int j = 0; j < 4 && i + j < n; ++j) v[i + j] = (2.0f * uniform01(r[j]) - 1.0f) * scale;
  }
  return v;
}

inline double dot(const std::vector<float>& a, const float* b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

struct GradCheckResult {
  double rel_error = 0;
  double analytic_norm = 0;
  double numeric_norm = 0;
  int checked = 0;
};

// A variable seen one element at a time, so that it may live in backend memory.
struct ElementAccess {
  int64_t n = 0;
  std::function<float(int64_t)> get;
  std::function<void(int64_t, float)> set;
};

// Compares analytic[i] with the central difference of loss() in var[i] on up to
// `samples` evenly spread elements.
inline GradCheckResult numeric_gradient_check(const ElementAccess& var, const float* analytic,
                                              const std::function<double()>& loss, int samples = 24,
                                              float h = 1e-2f) {
  GradCheckResult r;
  double diff2 = 0, ref2 = 0, num2 = 0;
  const int64_t n = var.n;
  const int64_t stride = std::max<int64_t>(1, n / samples);
  for (int64_t i = (stride / 2) % n; i < n && r.checked < samples; i += stride, ++r.checked) {
    const float saved = var.get(i);
    var.set(i, saved + h);
    const double lp = loss();
    var.set(i, saved - h);
    const double lm = loss();
    var.set(i, saved);
    const double numeric = (lp - lm) / (2.0 * h);
    diff2 += (numeric - analytic[i]) * (numeric - analytic[i]);
    ref2 += static_cast<double>(analytic[i]) * analytic[i];
    num2 += numeric * numeric;
  }
  r.analytic_norm = std::sqrt(ref2);
  r.numeric_norm = std::sqrt(num2);
  r.rel_error = std::sqrt(diff2) / std::max(std::sqrt(ref2), 1e-12);
  return r;
}

// The same for a variable in host memory.
inline GradCheckResult numeric_gradient_check(float* var, int64_t n, const float* analytic,
                                              const std::function<double()>& loss, int samples = 24,
                                              float h = 1e-2f) {
  const ElementAccess access{n, [var](int64_t i) { return var[i]; }, [var](int64_t i, float v) { var[i] = v; }};
  return numeric_gradient_check(access, analytic, loss, samples, h);
}

// Directional check for large graphs, where one element moves the loss too little
// for float32: along random +-1 directions u, the slope of L(v + s u) must equal g . u.
// The slope is a Richardson-extrapolated central difference (4 D(h/2) - D(h)) / 3,
// which cancels the O(h^2) term. The error is measured against ||g||, the typical size
// of g . u.
//
// The step per element h comes from the analytic gradient: h ||g|| (about the
// first-order change of L along u) is `first_order_change`, at most `max_step`. L's
// float32 round-off dL then weighs about dL / first_order_change in every tensor's error
// whatever the size of its gradient. A fixed step made it dL / (h ||g||): tensors with
// small gradients (an attention q.bias at 2x2: ||g|| 0.13) sat at the round-off floor
// (0.86% under GCC, 1.33% under clang) while those with large ones (conv_in.bias: 31)
// met the curvature (0.51%); with this rule no U-Net tensor of test_gradcheck exceeds
// 0.10% (GCC) or 0.13% (clang). max_step keeps tiny gradients from asking for huge steps.
inline GradCheckResult directional_gradient_check(float* var, int64_t n, const float* analytic,
                                                  const std::function<double()>& loss, uint32_t stream,
                                                  int directions = 2, double first_order_change = 0.05,
                                                  double max_step = 0.1) {
  GradCheckResult r;
  double g2 = 0, diff2 = 0, num2 = 0;
  for (int64_t i = 0; i < n; ++i) g2 += static_cast<double>(analytic[i]) * analytic[i];
  const float h = static_cast<float>(std::min(max_step, first_order_change / std::max(std::sqrt(g2), 1e-30)));
  std::vector<float> saved(var, var + n);
  auto slope = [&](const std::vector<float>& u, float step) {
    for (int64_t i = 0; i < n; ++i) var[i] = saved[i] + (u[i] < 0 ? -step : step);
    const double lp = loss();
    for (int64_t i = 0; i < n; ++i) var[i] = saved[i] - (u[i] < 0 ? -step : step);
    const double lm = loss();
    std::copy(saved.begin(), saved.end(), var);
    return (lp - lm) / (2.0 * step);
  };
  for (int d = 0; d < directions; ++d, ++r.checked) {
    const std::vector<float> u = random_vector(n, stream * 16 + d);
    double expected = 0;
    for (int64_t i = 0; i < n; ++i) expected += (u[i] < 0 ? -1.0 : 1.0) * analytic[i];
    const double numeric = (4.0 * slope(u, h / 2) - slope(u, h)) / 3.0;
    diff2 += (numeric - expected) * (numeric - expected);
    num2 += numeric * numeric;
  }
  r.analytic_norm = std::sqrt(g2);
  r.numeric_norm = std::sqrt(num2 / directions);
  r.rel_error = std::sqrt(diff2 / directions) / std::max(r.analytic_norm, 1e-12);
  return r;
}

}  // namespace ddpm::test
