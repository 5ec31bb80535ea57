// The diffusion process on the GPU: the Ops methods that core/diffusion.cpp implements
// on the host, built the same way: per-example coefficients gathered on the host from
// the float64 tables (Diffusion::tables()), uploaded, then one elementwise kernel that
// evaluates the host formula in double. The _rn intrinsics stop nvcc from contracting
// a * b + c into an FMA (the host code is compiled without contraction), so outputs
// agree with the CPU bit for bit except where a double libm function differs in its
// last bit. The noise is the counter-based Philox / Box-Muller of core/rng.h.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cuda/kernels.cuh"
#include "core/diffusion.h"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

void check_timesteps(const Diffusion& d, const int* t, int N) {
  for (int n = 0; n < N; ++n) {
    DDPM_CHECK(t[n] >= 0 && t[n] < d.num_timesteps(), "timestep ", t[n], " of example ", n, " outside [0, ",
               d.num_timesteps(), ")");
  }
}

__device__ inline double mul_add(double a, double x, double b, double y) {  // a x + b y, no contraction
  return __dadd_rn(__dmul_rn(a, x), __dmul_rn(b, y));
}

// diffusion.cpp's reverse_element: x̂_0 (clipped to [-1, 1]) and μ_θ.
__device__ inline void reverse_element(const ReverseCoefs& c, double out, double x_t, double* xstart, double* mean) {
  double xs = mul_add(c.xstart_from_xt, x_t, c.xstart_from_out, out);
  if (xs < -1.0 || xs > 1.0) xs = xs < -1.0 ? -1.0 : 1.0;
  *xstart = xs;
  *mean = c.mean_is_output ? out : mul_add(c.mean_from_xstart, xs, c.mean_from_xt, x_t);
}

// Uploads one coefficient struct per example into the coefficient slot.
template <typename T>
const T* upload_coefs(CudaOps& ops, const std::vector<T>& coefs) {
  return static_cast<const T*>(ops.upload_to_scratch(kSlotCoefs, coefs.data(), sizeof(T) * coefs.size()));
}

// --- kernels -----------------------------------------------------------------------------

__global__ void fill_normal_kernel(float* out, int N, int64_t per_example, u32x2 key, Purpose purpose,
                                   uint32_t sub_id, uint32_t step, uint32_t first_index) {
  const int64_t blocks = (per_example + 3) / 4;
  DDPM_GRID_STRIDE(i, N * blocks) {
    const int64_t n = i / blocks, blk = i % blocks;
    const u32x4 r = philox4x32_10(
        philox_counter(purpose, sub_id, step, first_index + static_cast<uint32_t>(n), static_cast<uint32_t>(blk)), key);
    float z[4];
    box_muller(r[0], r[1], &z[0], &z[1]);
    box_muller(r[2], r[3], &z[2], &z[3]);
    float* o = out + n * per_example + blk * 4;
    for (int j = 0; j < 4 && blk * 4 + j < per_example; ++j) o[j] = z[j];
  }
}

__global__ void images_to_model_kernel(float* out, const uint8_t* pixels, int64_t n) {
  DDPM_GRID_STRIDE(i, n) out[i] = __fsub_rn(__fdiv_rn(static_cast<float>(pixels[i]), 127.5f), 1.0f);
}

struct QSampleCoefs {
  double from_x0, from_noise;  // sqrt(ᾱ_t), sqrt(1 - ᾱ_t)
};

__global__ void q_sample_kernel(float* x_t, const float* x0, const float* noise, const QSampleCoefs* c,
                                int64_t per_example, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const QSampleCoefs k = c[i / per_example];
    x_t[i] = static_cast<float>(mul_add(k.from_x0, x0[i], k.from_noise, noise[i]));
  }
}

struct MseCoefs {
  double coef1, coef2;  // the x_{t-1} target μ̃_t = coef1 x_0 + coef2 x_t
};

constexpr int64_t kLossChunk = 4096;

// grad (nullable) and per-(example, chunk) sums of (target - out)²: one block per chunk,
// a fixed strided split over threads and a fixed tree.
__global__ void mse_kernel(double* partial, float* grad, const float* out, const float* x0, const float* x_t,
                           const float* noise, const MseCoefs* coefs, int mean_type, int64_t per_example,
                           double grad_weight, double inv_d) {
  __shared__ double sums[kThreads];
  const int n = blockIdx.y;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kLossChunk;
  const int64_t end = min(per_example, begin + kLossChunk);
  const MseCoefs c = coefs[n];
  double s = 0.0;
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) {
    const int64_t i = static_cast<int64_t>(n) * per_example + j;
    const double target = mean_type == static_cast<int>(MeanType::kEps)      ? static_cast<double>(noise[i])
                          : mean_type == static_cast<int>(MeanType::kXstart) ? static_cast<double>(x0[i])
                                                                             : mul_add(c.coef1, x0[i], c.coef2, x_t[i]);
    const double diff = __dsub_rn(target, static_cast<double>(out[i]));
    s += diff * diff;
    if (grad) grad[i] = static_cast<float>(__dmul_rn(__dmul_rn(__dmul_rn(grad_weight, -2.0), diff), inv_d));
  }
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[static_cast<int64_t>(n) * gridDim.x + blockIdx.x] = sums[0];
}

struct PSampleCoefs {
  ReverseCoefs reverse;
  double sigma;  // σ_t, 0 at t = 0
};

__global__ void p_sample_kernel(float* x_prev, float* pred_xstart, const float* out, const float* x_t,
                                const float* noise, const PSampleCoefs* c, int64_t per_example, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const PSampleCoefs k = c[i / per_example];
    double xstart, mean;
    reverse_element(k.reverse, out[i], x_t[i], &xstart, &mean);
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
    x_prev[i] = static_cast<float>(__dadd_rn(mean, __dmul_rn(k.sigma, static_cast<double>(noise[i]))));
  }
}

struct DdimCoefs {
  ReverseCoefs reverse;
  double sqrt_recip, sqrt_recipm1, from_xstart, from_eps, sigma;
};

__global__ void ddim_kernel(float* x_prev, float* pred_xstart, const float* out, const float* x_t, const float* noise,
                            const DdimCoefs* c, int64_t per_example, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const DdimCoefs k = c[i / per_example];
    double xstart, mean;
    reverse_element(k.reverse, out[i], x_t[i], &xstart, &mean);
    const double eps = __ddiv_rn(__dsub_rn(__dmul_rn(k.sqrt_recip, x_t[i]), xstart), k.sqrt_recipm1);
    const double z = k.sigma != 0.0 ? static_cast<double>(noise[i]) : 0.0;
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
    x_prev[i] = static_cast<float>(__dadd_rn(mul_add(k.from_xstart, xstart, k.from_eps, eps), __dmul_rn(k.sigma, z)));
  }
}

}  // namespace

void CudaOps::fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose, uint32_t sub_id,
                          uint32_t step, uint32_t first_index) {
  const u32x2 k = philox_key(seed);
  const int64_t blocks = N * ((per_example + 3) / 4);
  if (blocks == 0) return;
  fill_normal_kernel<<<grid_for(blocks), kThreads, 0, stream_>>>(out, N, per_example, k, purpose, sub_id, step,
                                                                 first_index);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::images_to_model(float* out, const uint8_t* pixels_host, int64_t n) {
  if (n <= 0) return;
  const auto* pixels = static_cast<const uint8_t*>(upload_to_scratch(kSlotBytes, pixels_host, static_cast<size_t>(n)));
  images_to_model_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, pixels, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::q_sample(const Diffusion& d, float* x_t, const float* x0, const float* noise, const int* t, int N,
                       int64_t per_example) {
  check_timesteps(d, t, N);
  std::vector<QSampleCoefs> c(N);
  for (int n = 0; n < N; ++n) {
    c[n] = {d.tables().sqrt_alphas_cumprod[t[n]], d.tables().sqrt_one_minus_alphas_cumprod[t[n]]};
  }
  const int64_t total = N * per_example;
  q_sample_kernel<<<grid_for(total), kThreads, 0, stream_>>>(x_t, x0, noise, upload_coefs(*this, c), per_example,
                                                             total);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::training_losses(const Diffusion& d, double* losses, float* grad, const float* model_out,
                              const float* x0, const float* x_t, const float* noise, const int* t, int N,
                              int64_t per_example, double grad_weight) {
  if (d.loss_type() != LossType::kMse) {  // the variational bound: the host path (rare, exact)
    Ops::training_losses(d, losses, grad, model_out, x0, x_t, noise, t, N, per_example, grad_weight);
    return;
  }
  check_timesteps(d, t, N);
  DDPM_CHECK(N <= 65535, "training_losses: batch ", N);
  std::vector<MseCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = {d.tables().posterior_mean_coef1[t[n]], d.tables().posterior_mean_coef2[t[n]]};
  const MseCoefs* coefs = upload_coefs(*this, c);
  const int64_t chunks = (per_example + kLossChunk - 1) / kLossChunk;
  double* partial = scratch_as<double>(kSlotReducePartial, N * chunks);
  const double inv_d = 1.0 / static_cast<double>(per_example);
  mse_kernel<<<dim3(static_cast<unsigned>(chunks), N), kThreads, 0, stream_>>>(
      partial, grad, model_out, x0, x_t, noise, coefs, static_cast<int>(d.mean_type()), per_example, grad_weight,
      inv_d);
  DDPM_CHECK_LAUNCH();
  std::vector<double> host(static_cast<size_t>(N * chunks));
  DDPM_CHECK_CUDA(cudaMemcpyAsync(host.data(), partial, sizeof(double) * host.size(), cudaMemcpyDeviceToHost, stream_));
  DDPM_CHECK_CUDA(cudaStreamSynchronize(stream_));
  for (int n = 0; n < N; ++n) {
    double sum = 0.0;
    for (int64_t k = 0; k < chunks; ++k) sum += host[static_cast<size_t>(n * chunks + k)];
    losses[n] = sum * inv_d;
  }
}

void CudaOps::p_sample(const Diffusion& d, float* x_prev, float* pred_xstart, const float* model_out,
                       const float* x_t, const float* noise, const int* t, int N, int64_t per_example) {
  check_timesteps(d, t, N);
  std::vector<PSampleCoefs> c(N);
  for (int n = 0; n < N; ++n) {
    c[n].reverse = reverse_coefs(d.tables(), d.mean_type(), t[n]);
    c[n].sigma = t[n] == 0 ? 0.0 : std::exp(0.5 * d.tables().model_log_variance[t[n]]);
  }
  const int64_t total = N * per_example;
  p_sample_kernel<<<grid_for(total), kThreads, 0, stream_>>>(x_prev, pred_xstart, model_out, x_t, noise,
                                                             upload_coefs(*this, c), per_example, total);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::ddim_sample(const Diffusion& d, float* x_prev, float* pred_xstart, const float* model_out,
                          const float* x_t, const float* noise, const int* t, const int* t_prev, int N,
                          int64_t per_example, double eta) {
  check_timesteps(d, t, N);
  DDPM_CHECK(eta >= 0.0 && eta <= 1.0, "DDIM eta ", eta, " outside [0, 1]");
  DDPM_CHECK(eta == 0.0 || noise != nullptr, "DDIM with eta > 0 needs noise");
  const DiffusionTables& tb = d.tables();
  std::vector<DdimCoefs> c(N);
  for (int n = 0; n < N; ++n) {  // diffusion.cpp's ddim_sample, coefficient for coefficient
    DDPM_CHECK(t_prev[n] >= -1 && t_prev[n] < t[n], "DDIM step from ", t[n], " to ", t_prev[n]);
    const double ab = tb.alphas_cumprod[t[n]];
    const double ab_prev = t_prev[n] >= 0 ? tb.alphas_cumprod[t_prev[n]] : 1.0;
    const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
    c[n].reverse = reverse_coefs(d.tables(), d.mean_type(), t[n]);
    c[n].sqrt_recip = tb.sqrt_recip_alphas_cumprod[t[n]];
    c[n].sqrt_recipm1 = tb.sqrt_recipm1_alphas_cumprod[t[n]];
    c[n].from_xstart = std::sqrt(ab_prev);
    c[n].from_eps = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
    c[n].sigma = t_prev[n] >= 0 ? sigma : 0.0;
  }
  // With eta = 0 the noise is never read (sigma 0); pass any valid pointer.
  const int64_t total = N * per_example;
  ddim_kernel<<<grid_for(total), kThreads, 0, stream_>>>(x_prev, pred_xstart, model_out, x_t,
                                                         noise ? noise : model_out, upload_coefs(*this, c),
                                                         per_example, total);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
