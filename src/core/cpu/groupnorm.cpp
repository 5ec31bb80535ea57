// GroupNorm (eps 1e-6) over NHWC, optionally fused with the swish that follows it in
// every residual block and at the output. The algebra is core/groupnorm_math.h, shared
// with cuda/groupnorm.cu: per-(n, c) sums in double (channel_sums), per-group
// coefficients, then one elementwise pass. Backward recomputes the normalised value (and
// the swish) from the input and the saved mean and rstd instead of storing them.
// Temporaries live in CpuOps's scratch slots: nothing is allocated per call.
#include "core/common.h"
#include "core/cpu/channel_sums.h"
#include "core/cpu/cpu_ops.h"
#include "core/cpu/vec_math.h"
#include "core/groupnorm_math.h"

namespace ddpm {
namespace {

// dz/dy of z = swish(y) (or of z = y), times dz.
template <bool kSwish>
inline float grad_through_swish(float dz, float y) {
  if constexpr (!kSwish) return dz;
  const float s = sigmoid_fast(y);
  return dz * (s * (1.0f + y * (1.0f - s)));
}

// out [N, HW, C] = (swish)(in * scale[n, c] + shift[n, c])
template <bool kSwish>
void normalize(float* out, const float* in, const float* scale, const float* shift, int N, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int p = 0; p < HW; ++p) {
      const int64_t row = (static_cast<int64_t>(n) * HW + p) * C;
      const float* sc = scale + static_cast<int64_t>(n) * C;
      const float* sh = shift + static_cast<int64_t>(n) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float v = in[row + c] * sc[c] + sh[c];
        if constexpr (kSwish) {
          out[row + c] = v * sigmoid_fast(v);
        } else {
          out[row + c] = v;
        }
      }
    }
  }
}

// Per (n, c): sums over HW of dy and of dy x̂, with x̂ = x rs + nmr and y = x̂ w + b.
template <bool kSwish>
ChannelTotals backward_sums(CpuOps& ops, const float* dout, const float* in, const float* rs_c, const float* nmr_c,
                            const float* w, const float* b, int N, int HW, int C) {
  return channel_sums(ops, N, HW, C, [&](int n, int p, double* a, double* q) {
    const int64_t row = (static_cast<int64_t>(n) * HW + p) * C;
    const float* rs = rs_c + static_cast<int64_t>(n) * C;
    const float* nmr = nmr_c + static_cast<int64_t>(n) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const float xh = in[row + c] * rs[c] + nmr[c];
      const float dy = grad_through_swish<kSwish>(dout[row + c], xh * w[c] + b[c]);
      a[c] += dy;
      q[c] += static_cast<double>(dy) * xh;
    }
  });
}

// din = k_dy dy + k_x x + k_0 per (n, c), with dy recomputed from dout and y = x scale + shift.
template <bool kSwish, bool kAccumulate>
void input_grad(float* din, const float* dout, const float* in, const float* scale_c, const float* shift_c,
                const float* k_dy, const float* k_x, const float* k_0, int N, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int p = 0; p < HW; ++p) {
      const int64_t row = (static_cast<int64_t>(n) * HW + p) * C;
      const int64_t nc = static_cast<int64_t>(n) * C;
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

// out [N, HW, C] = (swish)((in - mean_g) * rstd_g * w[c] + b[c]);  mean, rstd [N, G]
void CpuOps::groupnorm_forward(float* out, float* mean, float* rstd, const float* in, const float* w, const float* b,
                               const GroupNormSpec& s) {
  s.check();
  const int N = s.N, HW = s.HW, C = s.C, G = s.G, Cg = C / G;
  const ChannelTotals sums = channel_sums(*this, N, HW, C, [&](int n, int p, double* a, double* q) {
    const float* x = in + (static_cast<int64_t>(n) * HW + p) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      a[c] += x[c];
      q[c] += static_cast<double>(x[c]) * x[c];
    }
  });
  const int64_t NC = static_cast<int64_t>(N) * C;
  float* scale = scratch_as<float>(kSlotNormCoef, 2 * NC);  // [N, C] each
  float* shift = scale + NC;
  const double count = static_cast<double>(HW) * Cg;
  for (int n = 0; n < N; ++n) {
    for (int g = 0; g < G; ++g) {
      const GroupSums t = group_sums(sums.a + n * C, sums.b + n * C, 1, g * Cg, Cg, nullptr);
      const GroupMoments m = group_moments(t.a, t.b, count);
      mean[n * G + g] = static_cast<float>(m.mean);
      rstd[n * G + g] = static_cast<float>(m.rstd);
      for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
        const ChannelAffine f = forward_affine(m, w[c], b[c]);
        scale[n * C + c] = f.scale;
        shift[n * C + c] = f.shift;
      }
    }
  }
  if (s.with_swish()) {
    normalize<true>(out, in, scale, shift, N, HW, C);
  } else {
    normalize<false>(out, in, scale, shift, N, HW, C);
  }
}

// dy = dz * dswish(y);  db += sum dy;  dw += sum dy x̂;  din = k_dy dy + k_x x + k_0
// (core/groupnorm_math.h): two passes over the data.
void CpuOps::groupnorm_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                                const float* mean, const float* rstd, const float* w, const float* b,
                                const GroupNormSpec& s) {
  s.check();
  const int N = s.N, HW = s.HW, C = s.C, G = s.G, Cg = C / G;
  const int64_t NC = static_cast<int64_t>(N) * C;
  // per (n, c): the saved affine maps (rs, nmr, scale, shift), then k_dy, k_x, k_0
  float* coef = scratch_as<float>(kSlotNormCoef, 7 * NC);
  float *rs_c = coef, *nmr_c = coef + NC, *scale_c = coef + 2 * NC, *shift_c = coef + 3 * NC;
  float *k_dy = coef + 4 * NC, *k_x = coef + 5 * NC, *k_0 = coef + 6 * NC;
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      const int g = n * G + c / Cg;
      const SavedAffine f = saved_affine(mean[g], rstd[g], w[c], b[c]);
      const int64_t i = static_cast<int64_t>(n) * C + c;
      rs_c[i] = f.rs, nmr_c[i] = f.nmr, scale_c[i] = f.scale, shift_c[i] = f.shift;
    }
  const ChannelTotals sums = s.with_swish() ? backward_sums<true>(*this, dout, in, rs_c, nmr_c, w, b, N, HW, C)
                                            : backward_sums<false>(*this, dout, in, rs_c, nmr_c, w, b, N, HW, C);
  for (int c = 0; c < C; ++c) {
    double sdb = 0, sdw = 0;
    for (int n = 0; n < N; ++n) {
      sdb += sums.a[static_cast<int64_t>(n) * C + c];
      sdw += sums.b[static_cast<int64_t>(n) * C + c];
    }
    db[c] += static_cast<float>(sdb);
    dw[c] += static_cast<float>(sdw);
  }
  const double count = static_cast<double>(HW) * Cg;
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < G; ++g) {
      const GroupSums t = group_sums(sums.a + n * C, sums.b + n * C, 1, g * Cg, Cg, w);
      const double m1 = t.a / count, m2 = t.b / count;
      for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
        const InputGradCoefs k = input_grad_coefs(mean[n * G + g], rstd[n * G + g], m1, m2, w[c]);
        const int64_t i = static_cast<int64_t>(n) * C + c;
        k_dy[i] = k.k_dy, k_x[i] = k.k_x, k_0[i] = k.k_0;
      }
    }
  if (s.with_swish()) {
    if (accumulate) input_grad<true, true>(din, dout, in, scale_c, shift_c, k_dy, k_x, k_0, N, HW, C);
    else input_grad<true, false>(din, dout, in, scale_c, shift_c, k_dy, k_x, k_0, N, HW, C);
  } else {
    if (accumulate) input_grad<false, true>(din, dout, in, scale_c, shift_c, k_dy, k_x, k_0, N, HW, C);
    else input_grad<false, false>(din, dout, in, scale_c, shift_c, k_dy, k_x, k_0, N, HW, C);
  }
}

}  // namespace ddpm
