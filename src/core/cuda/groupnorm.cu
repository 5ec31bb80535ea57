// GroupNorm (eps 1e-6) over NHWC, optionally fused with the swish after it. The algebra
// is core/groupnorm_math.h, shared with the CPU half (cpu/groupnorm.cpp): per-(n, c)
// sums in double with a fixed reduction order (cuda::channel_sums), per-group
// coefficients, then one elementwise pass. Backward recomputes x̂ (and the swish) from
// the input and the saved mean and rstd.
#include "core/cuda/kernels.cuh"
#include "core/groupnorm_math.h"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

// (x, x²) at [n, p, c] of x [N, HW, C]
struct MomentsValue {
  const float* x;
  int HW, C;
  __device__ double2 operator()(int n, int p, int c) const {
    const double v = x[(static_cast<int64_t>(n) * HW + p) * C + c];
    return make_double2(v, v * v);
  }
};

// (dy, dy x̂) at [n, p, c], with x̂ = x rs + nmr and dy the gradient reaching
// y = x̂ w + b (through the swish when fused), as the CPU's backward_sums.
struct GradMomentsValue {
  const float *dout, *in, *mean, *rstd, *w, *b;
  int HW, C, Cg, G;
  bool with_swish;
  __device__ double2 operator()(int n, int p, int c) const {
    const int64_t i = (static_cast<int64_t>(n) * HW + p) * C + c;
    const int g = n * G + c / Cg;
    const SavedAffine f = saved_affine(mean[g], rstd[g], w[c], b[c]);
    const float xh = in[i] * f.rs + f.nmr;
    const float y = xh * w[c] + b[c];
    const float dy = with_swish ? dout[i] * cuda::swish_grad(y) : dout[i];
    return make_double2(dy, static_cast<double>(dy) * xh);
  }
};

// Per (n, g): mean, rstd, and per (n, c) the affine map y = x scale + shift.
__global__ void group_stats_kernel(float* mean, float* rstd, float* scale, float* shift, const double2* total,
                                   const float* w, const float* b, int N, int HW, int C, int G) {
  const int Cg = C / G;
  const double count = static_cast<double>(HW) * Cg;
  DDPM_GRID_STRIDE(i, static_cast<int64_t>(N) * G) {
    const int64_t n = i / G;
    const int g = static_cast<int>(i % G);
    const double* t = reinterpret_cast<const double*>(total + n * C);  // (a, b) per channel
    const GroupSums s = group_sums(t, t + 1, 2, g * Cg, Cg, nullptr);
    const GroupMoments m = group_moments(s.a, s.b, count);
    mean[i] = static_cast<float>(m.mean);
    rstd[i] = static_cast<float>(m.rstd);
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
      const ChannelAffine f = forward_affine(m, w[c], b[c]);
      scale[n * C + c] = f.scale;
      shift[n * C + c] = f.shift;
    }
  }
}

// out [N, HW, C] = (swish)(in * scale[n, c] + shift[n, c])
__global__ void normalize_kernel(float* out, const float* in, const float* scale, const float* shift, int64_t HWC,
                                 int C, int64_t total, bool with_swish) {
  DDPM_GRID_STRIDE(i, total) {
    const int64_t nc = (i / HWC) * C + i % C;
    const float v = in[i] * scale[nc] + shift[nc];
    out[i] = with_swish ? v * cuda::sigmoid(v) : v;
  }
}

// dw [c] += sum_n sum dy x̂,  db [c] += sum_n sum dy
__global__ void norm_param_grads_kernel(float* dw, float* db, const double2* total, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double sdb = 0, sdw = 0;
  for (int n = 0; n < N; ++n) {
    sdb += total[static_cast<int64_t>(n) * C + c].x;
    sdw += total[static_cast<int64_t>(n) * C + c].y;
  }
  db[c] += static_cast<float>(sdb);
  dw[c] += static_cast<float>(sdw);
}

// Per (n, c) of group g: the saved affine map (scale, shift) and din's coefficients
// k_dy, k_x, k_0 from the group's gradient means m1 = mean_g(dy w), m2 = mean_g(dy w x̂).
struct InputGradPlan {
  float *scale, *shift, *k_dy, *k_x, *k_0;  // [N, C] each
};
__global__ void input_grad_coefs_kernel(InputGradPlan plan, const double2* total, const float* mean,
                                        const float* rstd, const float* w, const float* b, int N, int HW, int C,
                                        int G) {
  const int Cg = C / G;
  const double count = static_cast<double>(HW) * Cg;
  DDPM_GRID_STRIDE(i, static_cast<int64_t>(N) * G) {
    const int64_t n = i / G;
    const int g = static_cast<int>(i % G);
    const double* t = reinterpret_cast<const double*>(total + n * C);
    const GroupSums s = group_sums(t, t + 1, 2, g * Cg, Cg, w);
    const double m1 = s.a / count, m2 = s.b / count;
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
      const SavedAffine f = saved_affine(mean[i], rstd[i], w[c], b[c]);
      const InputGradCoefs k = input_grad_coefs(mean[i], rstd[i], m1, m2, w[c]);
      const int64_t nc = n * C + c;
      plan.scale[nc] = f.scale, plan.shift[nc] = f.shift;
      plan.k_dy[nc] = k.k_dy, plan.k_x[nc] = k.k_x, plan.k_0[nc] = k.k_0;
    }
  }
}

// din = k_dy dy + k_x x + k_0 with dy recomputed from dout and y = x scale + shift,
// assigned or added
__global__ void input_grad_kernel(float* din, bool accumulate, const float* dout, const float* in, InputGradPlan plan,
                                  int64_t HWC, int C, int64_t total, bool with_swish) {
  DDPM_GRID_STRIDE(i, total) {
    const int64_t nc = (i / HWC) * C + i % C;
    const float x = in[i];
    const float y = x * plan.scale[nc] + plan.shift[nc];
    const float dy = with_swish ? dout[i] * cuda::swish_grad(y) : dout[i];
    const float v = plan.k_dy[nc] * dy + plan.k_x[nc] * x + plan.k_0[nc];
    din[i] = accumulate ? din[i] + v : v;
  }
}

}  // namespace

void CudaOps::groupnorm_forward(float* out, float* mean, float* rstd, const float* in, const float* w, const float* b,
                                const GroupNormSpec& s) {
  s.check();
  const int N = s.N, HW = s.HW, C = s.C, G = s.G;
  const double2* total = cuda::channel_sums(*this, N, HW, C, MomentsValue{in, HW, C});
  const int64_t nc = static_cast<int64_t>(N) * C;
  float* scale = scratch_as<float>(kSlotNormCoef, 2 * nc);
  float* shift = scale + nc;
  group_stats_kernel<<<grid_for(static_cast<int64_t>(N) * G), kThreads, 0, stream_>>>(mean, rstd, scale, shift, total,
                                                                                      w, b, N, HW, C, G);
  DDPM_CHECK_LAUNCH();
  const int64_t HWC = static_cast<int64_t>(HW) * C, n = N * HWC;
  normalize_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, scale, shift, HWC, C, n, s.with_swish());
  DDPM_CHECK_LAUNCH();
}

void CudaOps::groupnorm_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                                 const float* mean, const float* rstd, const float* w, const float* b,
                                 const GroupNormSpec& s) {
  s.check();
  const int N = s.N, HW = s.HW, C = s.C, G = s.G;
  const GradMomentsValue value{dout, in, mean, rstd, w, b, HW, C, C / G, G, s.with_swish()};
  const double2* total = cuda::channel_sums(*this, N, HW, C, value);
  norm_param_grads_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, stream_>>>(dw, db, total, N, C);
  DDPM_CHECK_LAUNCH();
  const int64_t nc = static_cast<int64_t>(N) * C;
  float* coef = scratch_as<float>(kSlotNormCoef, 5 * nc);
  const InputGradPlan plan{coef, coef + nc, coef + 2 * nc, coef + 3 * nc, coef + 4 * nc};
  input_grad_coefs_kernel<<<grid_for(static_cast<int64_t>(N) * G), kThreads, 0, stream_>>>(plan, total, mean, rstd, w,
                                                                                           b, N, HW, C, G);
  DDPM_CHECK_LAUNCH();
  const int64_t HWC = static_cast<int64_t>(HW) * C, n = N * HWC;
  input_grad_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, accumulate, dout, in, plan, HWC, C, n,
                                                           s.with_swish());
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
