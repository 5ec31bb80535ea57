// GroupNorm (eps 1e-6) over NHWC, optionally fused with the swish after it, as the CPU
// half (cpu/groupnorm.cpp) computes it: per-channel sums in double with a fixed
// reduction order (cuda::channel_sums), group statistics in double, then one
// elementwise pass. Backward recomputes x̂ (and the swish) from the input and the saved
// mean and rstd.
#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

constexpr double kGroupNormEps = 1e-6;

// (x, x²) at [n, p, c] of x [N, HW, C]
struct MomentsValue {
  const float* x;
  int HW, C;
  __device__ double2 operator()(int n, int p, int c) const {
    const double v = x[(static_cast<int64_t>(n) * HW + p) * C + c];
    return make_double2(v, v * v);
  }
};

// Where the element [n, p, c] of a normalised tensor stands: x̂ and the gradient dy
// reaching y = x̂ w + b (through the swish when fused).
struct NormElement {
  const float *dout, *in, *mean, *rstd, *w, *b;
  int HW, C, Cg, G;
  bool with_swish;
  __device__ void at(int64_t i, int n, int c, float* xh, float* dy) const {
    const int g = n * G + c / Cg;
    *xh = (in[i] - mean[g]) * rstd[g];
    *dy = with_swish ? dout[i] * cuda::swish_grad(*xh * w[c] + b[c]) : dout[i];
  }
};

// (dy, dy x̂) at [n, p, c]
struct GradMomentsValue {
  NormElement e;
  __device__ double2 operator()(int n, int p, int c) const {
    float xh, dy;
    e.at((static_cast<int64_t>(n) * e.HW + p) * e.C + c, n, c, &xh, &dy);
    return make_double2(dy, static_cast<double>(dy) * xh);
  }
};

// The per-channel totals of example n summed over group g's channels, each channel
// weighted by w[c] when w is given.
__device__ inline double2 group_total(const double2* total, int64_t n, int C, int g, int Cg, const float* w) {
  double2 s = make_double2(0.0, 0.0);
  for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
    const double wc = w ? w[c] : 1.0;
    s.x += total[n * C + c].x * wc;
    s.y += total[n * C + c].y * wc;
  }
  return s;
}

// Per (n, g): mean, rstd, and per (n, c) the affine map y = x scale + shift.
__global__ void group_stats_kernel(float* mean, float* rstd, float* scale, float* shift, const double2* total,
                                   const float* w, const float* b, int N, int HW, int C, int G) {
  const int Cg = C / G;
  const double count = static_cast<double>(HW) * Cg;
  DDPM_GRID_STRIDE(i, static_cast<int64_t>(N) * G) {
    const int64_t n = i / G;
    const int g = static_cast<int>(i % G);
    const double2 s = group_total(total, n, C, g, Cg, nullptr);
    const double mu = s.x / count;
    const double var = fmax(s.y / count - mu * mu, 0.0);
    const double rs = 1.0 / sqrt(var + kGroupNormEps);
    mean[i] = static_cast<float>(mu);
    rstd[i] = static_cast<float>(rs);
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
      scale[n * C + c] = static_cast<float>(rs * w[c]);
      shift[n * C + c] = static_cast<float>(b[c] - mu * rs * w[c]);
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

// m1 [n, g] = mean over the group of dx̂ = dy w, m2 [n, g] = mean of dx̂ x̂
__global__ void group_grad_means_kernel(float* m1, float* m2, const double2* total, const float* w, int N, int HW,
                                        int C, int G) {
  const int Cg = C / G;
  const double count = static_cast<double>(HW) * Cg;
  DDPM_GRID_STRIDE(i, static_cast<int64_t>(N) * G) {
    const int64_t n = i / G;
    const int g = static_cast<int>(i % G);
    const double2 s = group_total(total, n, C, g, Cg, w);
    m1[i] = static_cast<float>(s.x / count);
    m2[i] = static_cast<float>(s.y / count);
  }
}

// din = rstd (dx̂ - m1 - x̂ m2), assigned or added
__global__ void norm_input_grad_kernel(float* din, bool accumulate, NormElement e, const float* m1, const float* m2,
                                       int64_t total) {
  const int64_t HWC = static_cast<int64_t>(e.HW) * e.C;
  DDPM_GRID_STRIDE(i, total) {
    const int n = static_cast<int>(i / HWC), c = static_cast<int>(i % e.C);
    const int g = n * e.G + c / e.Cg;
    float xh, dy;
    e.at(i, n, c, &xh, &dy);
    const float v = e.rstd[g] * (dy * e.w[c] - m1[g] - xh * m2[g]);
    din[i] = accumulate ? din[i] + v : v;
  }
}

}  // namespace

void CudaOps::groupnorm_forward(float* out, float* mean, float* rstd, const float* in, const float* w, const float* b,
                                int N, int HW, int C, int G, bool with_swish) {
  DDPM_CHECK(G > 0 && C % G == 0, "GroupNorm: ", C, " channels in ", G, " groups");
  const double2* total = cuda::channel_sums(*this, N, HW, C, MomentsValue{in, HW, C});
  const int64_t nc = static_cast<int64_t>(N) * C;
  float* scale = scratch_as<float>(kSlotNormCoef, 2 * nc);
  float* shift = scale + nc;
  group_stats_kernel<<<grid_for(static_cast<int64_t>(N) * G), kThreads, 0, stream_>>>(mean, rstd, scale, shift, total,
                                                                                      w, b, N, HW, C, G);
  DDPM_CHECK_LAUNCH();
  const int64_t HWC = static_cast<int64_t>(HW) * C, n = N * HWC;
  normalize_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, scale, shift, HWC, C, n, with_swish);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::groupnorm_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                                 const float* mean, const float* rstd, const float* w, const float* b, int N, int HW,
                                 int C, int G, bool with_swish) {
  DDPM_CHECK(G > 0 && C % G == 0, "GroupNorm: ", C, " channels in ", G, " groups");
  const NormElement e{dout, in, mean, rstd, w, b, HW, C, C / G, G, with_swish};
  const double2* total = cuda::channel_sums(*this, N, HW, C, GradMomentsValue{e});
  norm_param_grads_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, stream_>>>(dw, db, total, N, C);
  DDPM_CHECK_LAUNCH();
  const int64_t ng = static_cast<int64_t>(N) * G;
  float* m1 = scratch_as<float>(kSlotNormCoef, 2 * ng);
  float* m2 = m1 + ng;
  group_grad_means_kernel<<<grid_for(ng), kThreads, 0, stream_>>>(m1, m2, total, w, N, HW, C, G);
  DDPM_CHECK_LAUNCH();
  const int64_t n = static_cast<int64_t>(N) * HW * C;
  norm_input_grad_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, accumulate, e, m1, m2, n);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
