// GroupNorm (eps 1e-6) over NHWC, optionally fused with the swish that follows it in
// every residual block and at the output. Backward recomputes the normalised value
// (and the swish) from the input and the saved mean and rstd instead of storing them.
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/vec_math.h"

namespace ddpm {
namespace {

constexpr double kGroupNormEps = 1e-6;

// Splits each image's HW rows into chunks so that N * chunks tasks keep all threads
// busy; the split depends only on the sizes, so results are reproducible.
int chunks_per_image(int N, int HW) {
  const int want = std::max(1, (4 * omp_get_max_threads() + N - 1) / N);
  return std::max(1, std::min(want, HW / 16));
}

// Per (n, c) sums over HW of f(n, p, c) and g(n, p, c), in double, with a fixed
// reduction order: chunk partials are added in chunk order.
template <typename F>
void channel_sums(std::vector<double>* sum_a, std::vector<double>* sum_b, int N, int HW, int C, F&& f) {
  const int chunks = chunks_per_image(N, HW);
  std::vector<double> part_a(static_cast<size_t>(N) * chunks * C), part_b(part_a.size());
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < chunks; ++k) {
      double* pa = part_a.data() + (static_cast<size_t>(n) * chunks + k) * C;
      double* pb = part_b.data() + (static_cast<size_t>(n) * chunks + k) * C;
      for (int c = 0; c < C; ++c) pa[c] = pb[c] = 0.0;
      const int lo = static_cast<int>(static_cast<int64_t>(HW) * k / chunks);
      const int hi = static_cast<int>(static_cast<int64_t>(HW) * (k + 1) / chunks);
      for (int p = lo; p < hi; ++p) f(n, p, pa, pb);
    }
  }
  sum_a->assign(static_cast<size_t>(N) * C, 0.0);
  sum_b->assign(static_cast<size_t>(N) * C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < chunks; ++k)
      for (int c = 0; c < C; ++c) {
        (*sum_a)[static_cast<size_t>(n) * C + c] += part_a[(static_cast<size_t>(n) * chunks + k) * C + c];
        (*sum_b)[static_cast<size_t>(n) * C + c] += part_b[(static_cast<size_t>(n) * chunks + k) * C + c];
      }
}

}  // namespace

// out [N, HW, C] = (swish)((in - mean_g) * rstd_g * w[c] + b[c]);  mean, rstd [N, G]
void CpuOps::groupnorm_forward(float* out, float* mean, float* rstd, const float* in, const float* w, const float* b,
                               int N, int HW, int C, int G, bool with_swish) {
  const int Cg = C / G;
  std::vector<double> s1, s2;
  channel_sums(&s1, &s2, N, HW, C, [&](int n, int p, double* a, double* q) {
    const float* x = in + (static_cast<int64_t>(n) * HW + p) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      a[c] += x[c];
      q[c] += static_cast<double>(x[c]) * x[c];
    }
  });
  std::vector<float> scale(static_cast<size_t>(N) * C), shift(scale.size());
  const double count = static_cast<double>(HW) * Cg;
  for (int n = 0; n < N; ++n) {
    for (int g = 0; g < G; ++g) {
      double a = 0, q = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
        a += s1[static_cast<size_t>(n) * C + c];
        q += s2[static_cast<size_t>(n) * C + c];
      }
      const double mu = a / count;
      const double var = std::max(q / count - mu * mu, 0.0);
      const double rs = 1.0 / std::sqrt(var + kGroupNormEps);
      mean[n * G + g] = static_cast<float>(mu);
      rstd[n * G + g] = static_cast<float>(rs);
      for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
        scale[static_cast<size_t>(n) * C + c] = static_cast<float>(rs * w[c]);
        shift[static_cast<size_t>(n) * C + c] = static_cast<float>(b[c] - mu * rs * w[c]);
      }
    }
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int p = 0; p < HW; ++p) {
      const float* x = in + (static_cast<int64_t>(n) * HW + p) * C;
      float* y = out + (static_cast<int64_t>(n) * HW + p) * C;
      const float* sc = scale.data() + static_cast<size_t>(n) * C;
      const float* sh = shift.data() + static_cast<size_t>(n) * C;
      if (with_swish) {
#pragma omp simd
        for (int c = 0; c < C; ++c) {
          const float v = x[c] * sc[c] + sh[c];
          y[c] = v * sigmoid_fast(v);
        }
      } else {
#pragma omp simd
        for (int c = 0; c < C; ++c) y[c] = x[c] * sc[c] + sh[c];
      }
    }
  }
}

namespace {

// dz/dy of z = swish(y) (or of z = y), times dz.
template <bool kSwish>
inline float grad_through_swish(float dz, float y) {
  if constexpr (!kSwish) return dz;
  const float s = sigmoid_fast(y);
  return dz * (s * (1.0f + y * (1.0f - s)));
}

// Per (n, c): sum over HW of dy and of dy * xhat, with xhat = x * rs + nmr and
// y = xhat * w + b.
template <bool kSwish>
void backward_sums(std::vector<double>* sum_dy, std::vector<double>* sum_dy_xh, const float* dout, const float* in,
                   const float* rs_c, const float* nmr_c, const float* w, const float* b, int N, int HW, int C) {
  channel_sums(sum_dy, sum_dy_xh, N, HW, C, [&](int n, int p, double* a, double* q) {
    const int64_t row = (static_cast<int64_t>(n) * HW + p) * C;
    const float* rs = rs_c + static_cast<size_t>(n) * C;
    const float* nmr = nmr_c + static_cast<size_t>(n) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const float xh = in[row + c] * rs[c] + nmr[c];
      const float dy = grad_through_swish<kSwish>(dout[row + c], xh * w[c] + b[c]);
      a[c] += dy;
      q[c] += static_cast<double>(dy) * xh;
    }
  });
}

// din = k_dy * dy + k_x * x + k_0 per (n, c), with dy recomputed from dout and y.
template <bool kSwish, bool kAccumulate>
void backward_apply(float* din, const float* dout, const float* in, const float* scale_c, const float* shift_c,
                    const float* k_dy, const float* k_x, const float* k_0, int N, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int p = 0; p < HW; ++p) {
      const int64_t row = (static_cast<int64_t>(n) * HW + p) * C;
      const size_t nc = static_cast<size_t>(n) * C;
      const float *sc = scale_c + nc, *sh = shift_c + nc, *a = k_dy + nc, *kx = k_x + nc, *k0 = k_0 + nc;
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float x = in[row + c];
        const float dy = grad_through_swish<kSwish>(dout[row + c], x * sc[c] + sh[c]);
        const float g = a[c] * dy + kx[c] * x + k0[c];
        if constexpr (kAccumulate) {
          din[row + c] += g;
        } else {
          din[row + c] = g;
        }
      }
    }
  }
}

}  // namespace

// With xhat = (x - mean) rstd, y = xhat * w + b and z = swish(y) (or z = y):
//   dy = dz * dswish(y);  db += sum dy;  dw += sum dy * xhat
//   din = rstd * (dxhat - mean_g(dxhat) - xhat * mean_g(dxhat * xhat)),  dxhat = dy * w
// which per (n, c) is the affine form din = rstd w dy - rstd^2 m2 x + rstd (rstd m2 mean - m1)
// with m1 = mean_g(dxhat), m2 = mean_g(dxhat * xhat): two passes over the data.
void CpuOps::groupnorm_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                                const float* mean, const float* rstd, const float* w, const float* b, int N, int HW,
                                int C, int G, bool with_swish) {
  const int Cg = C / G;
  const size_t NC = static_cast<size_t>(N) * C;
  std::vector<float> rs_c(NC), nmr_c(NC), scale_c(NC), shift_c(NC);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      const size_t i = static_cast<size_t>(n) * C + c;
      rs_c[i] = rstd[n * G + c / Cg];
      nmr_c[i] = -mean[n * G + c / Cg] * rs_c[i];
      scale_c[i] = rs_c[i] * w[c];
      shift_c[i] = nmr_c[i] * w[c] + b[c];
    }
  std::vector<double> sum_dy, sum_dy_xh;
  if (with_swish) {
    backward_sums<true>(&sum_dy, &sum_dy_xh, dout, in, rs_c.data(), nmr_c.data(), w, b, N, HW, C);
  } else {
    backward_sums<false>(&sum_dy, &sum_dy_xh, dout, in, rs_c.data(), nmr_c.data(), w, b, N, HW, C);
  }
  for (int c = 0; c < C; ++c) {
    double sdb = 0, sdw = 0;
    for (int n = 0; n < N; ++n) {
      sdb += sum_dy[static_cast<size_t>(n) * C + c];
      sdw += sum_dy_xh[static_cast<size_t>(n) * C + c];
    }
    db[c] += static_cast<float>(sdb);
    dw[c] += static_cast<float>(sdw);
  }
  std::vector<float> k_dy(NC), k_x(NC), k_0(NC);
  const double count = static_cast<double>(HW) * Cg;
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < G; ++g) {
      double m1 = 0, m2 = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
        m1 += sum_dy[static_cast<size_t>(n) * C + c] * w[c];
        m2 += sum_dy_xh[static_cast<size_t>(n) * C + c] * w[c];
      }
      m1 /= count;
      m2 /= count;
      const double rs = rstd[n * G + g], mu = mean[n * G + g];
      for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
        const size_t i = static_cast<size_t>(n) * C + c;
        k_dy[i] = static_cast<float>(rs * w[c]);
        k_x[i] = static_cast<float>(-rs * rs * m2);
        k_0[i] = static_cast<float>(rs * (rs * m2 * mu - m1));
      }
    }
  const float *sc = scale_c.data(), *sh = shift_c.data(), *a = k_dy.data(), *kx = k_x.data(), *k0 = k_0.data();
  if (with_swish) {
    if (accumulate) backward_apply<true, true>(din, dout, in, sc, sh, a, kx, k0, N, HW, C);
    else backward_apply<true, false>(din, dout, in, sc, sh, a, kx, k0, N, HW, C);
  } else {
    if (accumulate) backward_apply<false, true>(din, dout, in, sc, sh, a, kx, k0, N, HW, C);
    else backward_apply<false, false>(din, dout, in, sc, sh, a, kx, k0, N, HW, C);
  }
}

}  // namespace ddpm
