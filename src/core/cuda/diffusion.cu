// The diffusion kernels on the GPU (core/diffusion_ops.h), built as cpu/diffusion.cpp
// builds them: per-example coefficients gathered on the host from the float64 table
// (core/diffusion_table.h), uploaded, then one elementwise kernel that evaluates the
// formula of core/diffusion_math.h, the very function the host runs (outputs agree with
// the CPU to double rounding: see that header on FMA contraction). The noise is the
// counter-based Philox / Box-Muller of core/rng.h. The variational bound (the kl loss,
// vb_terms_bpd, prior_bpd) runs the host kernels through host copies: rare, and exact.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cuda/kernels.cuh"
#include "core/diffusion_ops.h"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

// Uploads one coefficient struct per example into the coefficient slot.
template <typename T>
const T* upload_coefs(CudaOps& ops, const std::vector<T>& coefs) {
  return static_cast<const T*>(ops.upload_to_scratch(kSlotCoefs, coefs.data(), sizeof(T) * coefs.size()));
}

// A host copy of n floats of device memory (empty for null): downloaded when `read`,
// uploaded back by write_back.
class HostCopy {
 public:
  HostCopy(CudaOps& ops, const float* device, int64_t n, bool read)
      : ops_(ops), device_(const_cast<float*>(device)), n_(n) {
    if (device == nullptr) return;
    host_.resize(static_cast<size_t>(n));
    if (read) ops.download(host_.data(), device, n);
  }
  float* get() { return device_ != nullptr ? host_.data() : nullptr; }
  void write_back() {
    if (device_ != nullptr) ops_.upload(device_, host_.data(), n_);
  }

 private:
  CudaOps& ops_;
  float* device_;
  int64_t n_;
  std::vector<float> host_;
};

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

__global__ void q_sample_kernel(float* x_t, const float* x0, const float* noise, const QSampleCoefs* c,
                                int64_t per_example, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    x_t[i] = static_cast<float>(q_sample_element(c[i / per_example], x0[i], noise[i]));
  }
}

constexpr int64_t kLossChunk = 4096;

// grad (nullable) and per-(example, chunk) sums of (target - out)²: one block per chunk,
// a fixed strided split over threads and a fixed tree.
__global__ void mse_kernel(double* partial, float* grad, const float* out, const float* x0, const float* x_t,
                           const float* noise, const MseCoefs* coefs, MeanType mean_type, int64_t per_example,
                           double grad_weight, double inv_d) {
  __shared__ double sums[kThreads];
  const int n = blockIdx.y;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kLossChunk;
  const int64_t end = min(per_example, begin + kLossChunk);
  const MseCoefs c = coefs[n];
  double s = 0.0;
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) {
    const int64_t i = static_cast<int64_t>(n) * per_example + j;
    const double diff = dm::sub(mse_target(mean_type, c, x0[i], x_t[i], noise[i]), out[i]);
    s += diff * diff;
    if (grad) grad[i] = static_cast<float>(mse_grad(grad_weight, diff, inv_d));
  }
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[static_cast<int64_t>(n) * gridDim.x + blockIdx.x] = sums[0];
}

__global__ void p_sample_kernel(float* x_prev, float* pred_xstart, const float* out, const float* x_t,
                                const float* noise, const PSampleCoefs* c, int64_t per_example, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    double xstart;
    x_prev[i] = static_cast<float>(p_sample_element(c[i / per_example], out[i], x_t[i], noise[i], true, &xstart));
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
  }
}

__global__ void ddim_kernel(float* x_prev, float* pred_xstart, const float* out, const float* x_t, const float* noise,
                            const DdimCoefs* c, int64_t per_example, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    double xstart;
    const double z = noise ? static_cast<double>(noise[i]) : 0.0;
    x_prev[i] = static_cast<float>(ddim_element(c[i / per_example], out[i], x_t[i], z, true, &xstart));
    if (pred_xstart) pred_xstart[i] = static_cast<float>(xstart);
  }
}


class CudaDiffusionOps final : public DiffusionOps {
 public:
  explicit CudaDiffusionOps(CudaOps& ops) : ops_(ops) {}
  void fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose, uint32_t sub_id,
                   uint32_t step, uint32_t first_index) override;
  void images_to_model(float* out, const uint8_t* pixels_host, int64_t n) override;
  void q_sample(const DiffusionTable& tb, float* x_t, const float* x0, const float* noise, const int* t, int N,
                int64_t per_example) override;
  void training_losses(const DiffusionTable& tb, double* losses, float* grad, const float* model_out,
                       const float* x0, const float* x_t, const float* noise, const int* t, int N,
                       int64_t per_example, double grad_weight) override;
  void vb_terms_bpd(const DiffusionTable& tb, double* terms, float* grad, float* pred_xstart, double* xstart_mse,
                    const float* model_out, const float* x0, const float* x_t, const int* t, int N,
                    int64_t per_example, bool clip, double grad_weight) override;
  void prior_bpd(const DiffusionTable& tb, double* prior, const float* x0, int N, int64_t per_example) override;
  void p_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                const float* x_t, const float* noise, const int* t, int N, int64_t per_example) override;
  void ddim_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                   const float* x_t, const float* noise, const int* t, const int* t_prev, int N,
                   int64_t per_example, double eta) override;

 private:
  CudaOps& ops_;
};

void CudaDiffusionOps::fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose,
                                   uint32_t sub_id, uint32_t step, uint32_t first_index) {
  const u32x2 k = philox_key(seed);
  const int64_t blocks = N * ((per_example + 3) / 4);
  if (blocks == 0) return;
  fill_normal_kernel<<<grid_for(blocks), kThreads, 0, ops_.stream()>>>(out, N, per_example, k, purpose, sub_id, step,
                                                                       first_index);
  DDPM_CHECK_LAUNCH();
}

void CudaDiffusionOps::images_to_model(float* out, const uint8_t* pixels_host, int64_t n) {
  if (n <= 0) return;
  const auto* pixels =
      static_cast<const uint8_t*>(ops_.upload_to_scratch(kSlotBytes, pixels_host, static_cast<size_t>(n)));
  images_to_model_kernel<<<grid_for(n), kThreads, 0, ops_.stream()>>>(out, pixels, n);
  DDPM_CHECK_LAUNCH();
}

void CudaDiffusionOps::q_sample(const DiffusionTable& tb, float* x_t, const float* x0, const float* noise,
                                const int* t, int N, int64_t per_example) {
  check_timesteps(tb, t, N);
  std::vector<QSampleCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = q_sample_coefs(tb, t[n]);
  const int64_t total = N * per_example;
  q_sample_kernel<<<grid_for(total), kThreads, 0, ops_.stream()>>>(x_t, x0, noise, upload_coefs(ops_, c),
                                                                   per_example, total);
  DDPM_CHECK_LAUNCH();
}

void CudaDiffusionOps::training_losses(const DiffusionTable& tb, double* losses, float* grad, const float* model_out,
                                       const float* x0, const float* x_t, const float* noise, const int* t, int N,
                                       int64_t per_example, double grad_weight) {
  if (tb.loss_type != LossType::kMse) {  // the variational bound, unclipped as on the host
    vb_terms_bpd(tb, losses, grad, nullptr, nullptr, model_out, x0, x_t, t, N, per_example, /*clip=*/false,
                 grad_weight);
    return;
  }
  check_timesteps(tb, t, N);
  DDPM_CHECK(N <= 65535, "training_losses: batch ", N);
  std::vector<MseCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = mse_coefs(tb, t[n]);
  const MseCoefs* coefs = upload_coefs(ops_, c);
  const int64_t chunks = (per_example + kLossChunk - 1) / kLossChunk;
  double* partial = ops_.scratch_as<double>(kSlotReducePartial, N * chunks);
  const double inv_d = 1.0 / static_cast<double>(per_example);
  mse_kernel<<<dim3(static_cast<unsigned>(chunks), N), kThreads, 0, ops_.stream()>>>(
      partial, grad, model_out, x0, x_t, noise, coefs, tb.mean_type, per_example, grad_weight, inv_d);
  DDPM_CHECK_LAUNCH();
  std::vector<double> host(static_cast<size_t>(N * chunks));
  DDPM_CHECK_CUDA(
      cudaMemcpyAsync(host.data(), partial, sizeof(double) * host.size(), cudaMemcpyDeviceToHost, ops_.stream()));
  DDPM_CHECK_CUDA(cudaStreamSynchronize(ops_.stream()));
  for (int n = 0; n < N; ++n) {
    double sum = 0.0;
    for (int64_t k = 0; k < chunks; ++k) sum += host[static_cast<size_t>(n * chunks + k)];
    losses[n] = sum * inv_d;
  }
}

void CudaDiffusionOps::vb_terms_bpd(const DiffusionTable& tb, double* terms, float* grad, float* pred_xstart,
                                    double* xstart_mse, const float* model_out, const float* x0, const float* x_t,
                                    const int* t, int N, int64_t per_example, bool clip, double grad_weight) {
  const int64_t n = N * per_example;
  HostCopy g(ops_, grad, n, false), pred(ops_, pred_xstart, n, false), out(ops_, model_out, n, true),
      a(ops_, x0, n, true), xt(ops_, x_t, n, true);
  host_diffusion_ops().vb_terms_bpd(tb, terms, g.get(), pred.get(), xstart_mse, out.get(), a.get(), xt.get(), t, N,
                                    per_example, clip, grad_weight);
  g.write_back();
  pred.write_back();
}

void CudaDiffusionOps::prior_bpd(const DiffusionTable& tb, double* prior, const float* x0, int N,
                                 int64_t per_example) {
  HostCopy a(ops_, x0, N * per_example, true);
  host_diffusion_ops().prior_bpd(tb, prior, a.get(), N, per_example);
}

void CudaDiffusionOps::p_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart, const float* model_out,
                                const float* x_t, const float* noise, const int* t, int N, int64_t per_example) {
  check_timesteps(tb, t, N);
  std::vector<PSampleCoefs> c(N);
  for (int n = 0; n < N; ++n) c[n] = p_sample_coefs(tb, t[n]);
  const int64_t total = N * per_example;
  p_sample_kernel<<<grid_for(total), kThreads, 0, ops_.stream()>>>(x_prev, pred_xstart, model_out, x_t, noise,
                                                                   upload_coefs(ops_, c), per_example, total);
  DDPM_CHECK_LAUNCH();
}

void CudaDiffusionOps::ddim_sample(const DiffusionTable& tb, float* x_prev, float* pred_xstart,
                                   const float* model_out, const float* x_t, const float* noise, const int* t,
                                   const int* t_prev, int N, int64_t per_example, double eta) {
  const std::vector<DdimCoefs> c = ddim_step_coefs(tb, t, t_prev, N, eta, noise != nullptr);
  // Where sigma is 0 the noise may be null: it is never read.
  const int64_t total = N * per_example;
  ddim_kernel<<<grid_for(total), kThreads, 0, ops_.stream()>>>(x_prev, pred_xstart, model_out, x_t, noise,
                                                               upload_coefs(ops_, c), per_example, total);
  DDPM_CHECK_LAUNCH();
}

}  // namespace

std::unique_ptr<DiffusionOps> make_cuda_diffusion_ops(CudaOps& ops) { return std::make_unique<CudaDiffusionOps>(ops); }

}  // namespace ddpm
