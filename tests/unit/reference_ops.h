// Plain references for the CPU backend's fast kernels: straightforward loops in double,
// written from the formulas in core/ops.h, shared by test_cpu_kernels and the op
// registry (op_registry.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/ops.h"

namespace ddpm::test {

// ||got - want|| / ||want||
inline double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double d = 0, n = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    d += (got[i] - want[i]) * (got[i] - want[i]);
    n += want[i] * want[i];
  }
  return std::sqrt(d / std::max(n, 1e-300));
}

// out [N, Ho, Wo, O] of an NHWC convolution with OIHW weights [O, C, KH, KW].
inline std::vector<double> conv_reference(const ConvSpec& s, const std::vector<float>& x, const std::vector<float>& w,
                                          const std::vector<float>& b) {
  const int Ho = s.out_h(), Wo = s.out_w();
  std::vector<double> out(static_cast<size_t>(s.N) * Ho * Wo * s.O);
  for (int n = 0; n < s.N; ++n)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int o = 0; o < s.O; ++o) {
          double acc = b[o];
          for (int ky = 0; ky < s.KH; ++ky)
            for (int kx = 0; kx < s.KW; ++kx) {
              const int iy = oy * s.stride + ky - s.pad_top, ix = ox * s.stride + kx - s.pad_left;
              if (iy < 0 || ix < 0 || iy >= s.H || ix >= s.W) continue;
              const float* px = &x[((static_cast<size_t>(n) * s.H + iy) * s.W + ix) * s.C];
              const size_t taps = static_cast<size_t>(s.KH) * s.KW;
              const size_t w0 = static_cast<size_t>(o) * s.C * taps + static_cast<size_t>(ky) * s.KW + kx;
              for (int c = 0; c < s.C; ++c) acc += double(px[c]) * w[w0 + static_cast<size_t>(c) * taps];
            }
          out[((static_cast<size_t>(n) * Ho + oy) * Wo + ox) * s.O + o] = acc;
        }
  return out;
}

// out [N, Ho, Wo, C]: the max, or the mean, of the taps of each K x K window that fall
// inside in [N, H, W, C] (the padding is neither a candidate nor counted).
inline std::vector<double> pool_reference(const PoolSpec& s, const std::vector<float>& x, bool max) {
  const int Ho = s.out_h(), Wo = s.out_w();
  std::vector<double> out(static_cast<size_t>(s.N) * Ho * Wo * s.C);
  for (int n = 0; n < s.N; ++n)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int c = 0; c < s.C; ++c) {
          double acc = max ? -INFINITY : 0.0;
          int taps = 0;
          for (int ky = 0; ky < s.K; ++ky)
            for (int kx = 0; kx < s.K; ++kx) {
              const int iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
              if (iy < 0 || ix < 0 || iy >= s.H || ix >= s.W) continue;
              const double v = x[((static_cast<size_t>(n) * s.H + iy) * s.W + ix) * s.C + c];
              acc = max ? std::max(acc, v) : acc + v;
              ++taps;
            }
          out[((static_cast<size_t>(n) * Ho + oy) * Wo + ox) * s.C + c] = max ? acc : acc / taps;
        }
  return out;
}

// out [N, C] = mean over HW of x [N, HW, C]
inline std::vector<double> global_avgpool_reference(const std::vector<float>& x, int N, int HW, int C) {
  std::vector<double> out(static_cast<size_t>(N) * C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < HW; ++p)
      for (int c = 0; c < C; ++c) out[size_t(n) * C + c] += x[(size_t(n) * HW + p) * C + c] / double(HW);
  return out;
}

// out [M, out_ch] with columns [out_first, out_first + count) replaced by in [M, in_ch]'s
// columns [in_first, in_first + count)
inline std::vector<double> copy_channels_reference(const std::vector<float>& out, int out_ch, int out_first,
                                                   const std::vector<float>& in, int in_ch, int in_first, int count,
                                                   int64_t M) {
  std::vector<double> y(out.begin(), out.end());
  for (int64_t m = 0; m < M; ++m)
    for (int c = 0; c < count; ++c) y[m * out_ch + out_first + c] = in[m * in_ch + in_first + c];
  return y;
}

// out [M, O] = in [M, C] w[O, C]^T + b
inline std::vector<double> linear_reference(const std::vector<float>& x, const std::vector<float>& w,
                                            const std::vector<float>& b, int64_t M, int C, int O) {
  std::vector<double> out(static_cast<size_t>(M * O));
  for (int64_t m = 0; m < M; ++m)
    for (int o = 0; o < O; ++o) {
      double acc = b[o];
      for (int c = 0; c < C; ++c) acc += double(x[m * C + c]) * w[static_cast<size_t>(o) * C + c];
      out[m * O + o] = acc;
    }
  return out;
}

// a [N, L, C] = softmax(q k^T / sqrt(C)) v, per image.
inline std::vector<double> attention_reference(const std::vector<float>& q, const std::vector<float>& k,
                                               const std::vector<float>& v, int N, int L, int C) {
  std::vector<double> out(static_cast<size_t>(N) * L * C);
  std::vector<double> s(static_cast<size_t>(L));
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < L; ++i) {
      double mx = -1e300, sum = 0;
      for (int j = 0; j < L; ++j) {
        double d = 0;
        for (int c = 0; c < C; ++c) d += double(q[(size_t(n) * L + i) * C + c]) * k[(size_t(n) * L + j) * C + c];
        s[j] = d / std::sqrt(double(C));
        mx = std::max(mx, s[j]);
      }
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int c = 0; c < C; ++c) {
        double acc = 0;
        for (int j = 0; j < L; ++j) acc += s[j] / sum * v[(size_t(n) * L + j) * C + c];
        out[(size_t(n) * L + i) * C + c] = acc;
      }
    }
  return out;
}

// GroupNorm (eps 1e-6) over [N, HW, C] with G groups, then swish when asked.
inline std::vector<double> groupnorm_reference(const std::vector<float>& x, const std::vector<float>& w,
                                               const std::vector<float>& b, int N, int HW, int C, int G,
                                               bool swish) {
  const int Cg = C / G;
  std::vector<double> out(x.size());
  auto at = [&](int n, int p, int c) { return (static_cast<size_t>(n) * HW + p) * C + c; };
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < G; ++g) {
      double s = 0, s2 = 0;
      for (int p = 0; p < HW; ++p)
        for (int c = g * Cg; c < (g + 1) * Cg; ++c) s += x[at(n, p, c)];
      const double mu = s / (double(HW) * Cg);
      for (int p = 0; p < HW; ++p)
        for (int c = g * Cg; c < (g + 1) * Cg; ++c) s2 += std::pow(x[at(n, p, c)] - mu, 2);
      const double rs = 1.0 / std::sqrt(s2 / (double(HW) * Cg) + 1e-6);
      for (int p = 0; p < HW; ++p)
        for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
          const double y = (x[at(n, p, c)] - mu) * rs * w[c] + b[c];
          out[at(n, p, c)] = swish ? y / (1.0 + std::exp(-y)) : y;
        }
    }
  return out;
}

// out [N, dim] = [sin(t f) | cos(t f)], f_i = exp(-ln(10000) i / (dim/2 - 1))
inline std::vector<double> timestep_embedding_reference(const std::vector<float>& t, int dim) {
  const int N = static_cast<int>(t.size()), half = dim / 2;
  std::vector<double> out(static_cast<size_t>(N) * dim, 0.0);
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < half; ++i) {
      const double arg = t[n] * std::exp(-std::log(10000.0) * i / (half - 1));
      out[size_t(n) * dim + i] = std::sin(arg);
      out[size_t(n) * dim + half + i] = std::cos(arg);
    }
  return out;
}

}  // namespace ddpm::test
