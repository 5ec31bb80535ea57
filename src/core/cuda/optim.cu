// The optimizer's per-element work on the GPU, as cpu/optim.cpp: the deterministic
// squared norm for global-norm clipping and the fused Adam + EMA update.
#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

// As on the CPU, fixed chunks (not one per thread or block count), each summed in a
// fixed order, then the chunk sums added in chunk order: the same bits on every run.
constexpr int64_t kChunk = int64_t{1} << 16;

// partial[chunk] = sum of x² over the chunk; one block per chunk, each thread a fixed
// strided subset, then a fixed shared-memory tree.
__global__ void chunk_sum_squares_kernel(double* partial, const float* x, int64_t n) {
  __shared__ double sums[kThreads];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int64_t end = min(n, begin + kChunk);
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) s += static_cast<double>(x[i]) * x[i];
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

__global__ void sum_in_order_kernel(double* out, const double* partial, int64_t count) {
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) total += partial[i];
  *out = total;
}

// The CPU loop's float operations one for one; the _rn intrinsics keep nvcc from
// contracting them into other FMAs, so the results agree with the CPU bit for bit.
struct AdamFloats {
  float grad_scale, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bias_correction2_sqrt, eps,
      ema_rate;
};

__global__ void adam_ema_kernel(float* param, float* m, float* v, float* ema, const float* grad, int64_t n,
                                AdamFloats s) {
  DDPM_GRID_STRIDE(i, n) {
    const float g = __fmul_rn(grad[i], s.grad_scale);
    const float mi = __fmaf_rn(g, s.one_minus_beta1, __fmul_rn(m[i], s.beta1));
    const float vi = __fmaf_rn(__fmul_rn(s.one_minus_beta2, g), g, __fmul_rn(v[i], s.beta2));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bias_correction2_sqrt), s.eps);
    const float p = __fadd_rn(param[i], __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
    param[i] = p;
    if (ema) ema[i] = __fmaf_rn(__fsub_rn(p, ema[i]), s.ema_rate, ema[i]);
  }
}

}  // namespace

double CudaOps::sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  double* partial = scratch_as<double>(kSlotSumSquares, chunks + 1);
  double* result = partial + chunks;
  chunk_sum_squares_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream_>>>(partial, x, n);
  DDPM_CHECK_LAUNCH();
  sum_in_order_kernel<<<1, 1, 0, stream_>>>(result, partial, chunks);
  DDPM_CHECK_LAUNCH();
  double host = 0.0;
  DDPM_CHECK_CUDA(cudaMemcpyAsync(&host, result, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  DDPM_CHECK_CUDA(cudaStreamSynchronize(stream_));
  return host;
}

void CudaOps::adam_ema_update(float* param, float* m, float* v, float* ema, const float* grad, int64_t n,
                              const AdamStep& s) {
  if (n <= 0) return;
  // The same float constants as the CPU's adam_ema_loop.
  AdamFloats f;
  f.grad_scale = static_cast<float>(s.grad_scale);
  f.beta1 = static_cast<float>(s.beta1);
  f.one_minus_beta1 = static_cast<float>(1.0 - s.beta1);
  f.beta2 = static_cast<float>(s.beta2);
  f.one_minus_beta2 = static_cast<float>(1.0 - s.beta2);
  f.neg_step_size = static_cast<float>(-(s.lr / s.bias_correction1));
  f.bias_correction2_sqrt = static_cast<float>(s.bias_correction2_sqrt);
  f.eps = static_cast<float>(s.eps);
  f.ema_rate = static_cast<float>(1.0 - s.ema_decay);
  adam_ema_kernel<<<grid_for(n), kThreads, 0, stream_>>>(param, m, v, ema, grad, n, f);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
