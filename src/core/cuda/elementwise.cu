// Elementwise and data-movement kernels, as cpu/elementwise.cpp: swish, dropout (the
// CPU's Philox masks bit for bit), the time-embedding channel bias and its gradient,
// nearest x2 upsampling and 2x2 average pooling (all NHWC).
#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

__global__ void swish_forward_kernel(float* out, const float* in, int64_t n) {
  DDPM_GRID_STRIDE(i, n) out[i] = in[i] * cuda::sigmoid(in[i]);
}

__global__ void swish_backward_kernel(float* din, const float* dout, const float* in, int64_t n) {
  DDPM_GRID_STRIDE(i, n) din[i] = dout[i] * cuda::swish_grad(in[i]);
}

// One thread per group of four elements: one Philox block gives their four draws,
// keyed exactly as CpuOps::dropout_apply.
__global__ void dropout_kernel(float* x, float p, float keep_scale, u32x2 key, uint32_t layer,
                               uint32_t step, uint32_t example_base, int N, int64_t per_example) {
  const int64_t blocks = (per_example + 3) / 4;
  DDPM_GRID_STRIDE(i, N * blocks) {
    const int64_t n = i / blocks, blk = i % blocks;
    const u32x4 r = philox4x32_10(
        philox_counter(Purpose::kDropout, layer, step, example_base + static_cast<uint32_t>(n), static_cast<uint32_t>(blk)),
        key);
    float* v = x + n * per_example + blk * 4;
    for (int j = 0; j < 4 && blk * 4 + j < per_example; ++j) v[j] *= uniform01(r[j]) >= p ? keep_scale : 0.0f;
  }
}

// x [N, HW, C] += bias [N, C]
__global__ void add_channel_bias_kernel(float* x, const float* bias, int64_t HWC, int C, int64_t total) {
  DDPM_GRID_STRIDE(i, total) x[i] += bias[(i / HWC) * C + i % C];
}

__global__ void store_totals_kernel(float* out, const double2* total, int64_t n) {
  DDPM_GRID_STRIDE(i, n) out[i] = static_cast<float>(total[i].x);
}

// out [N, 2H, 2W, C] from in [N, H, W, C]
__global__ void upsample_kernel(float* out, const float* in, int H, int W, int C, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, 2 * H, 2 * W, C);
    out[i] = in[((at.n * H + at.y / 2) * W + at.x / 2) * C + at.c];
  }
}

// One output element per thread over [N, Ho, Wo, C] reading the 2x2 block of
// src [N, 2Ho, 2Wo, C]: (a0 + a1) + (b0 + b1) in the CPU's order, times `scale`.
__global__ void sum_2x2_kernel(float* out, const float* src, int Ho, int Wo, int C, float scale, int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, Ho, Wo, C);
    const int64_t row = static_cast<int64_t>(2 * Wo) * C;
    const float* a = src + ((at.n * 2 * Ho + 2 * at.y) * 2 * Wo + 2 * at.x) * C + at.c;
    const float* b = a + row;
    out[i] = ((a[0] + a[C]) + (b[0] + b[C])) * scale;
  }
}

// din [N, H, W, C] (+= when accumulate) = 0.25 dout [n, y/2, x/2, c]
__global__ void avgpool_backward_kernel(float* din, bool accumulate, const float* dout, int H, int W, int C,
                                        int64_t total) {
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, H, W, C);
    const float g = 0.25f * dout[((at.n * (H / 2) + at.y / 2) * (W / 2) + at.x / 2) * C + at.c];
    din[i] = accumulate ? din[i] + g : g;
  }
}

}  // namespace

void CudaOps::swish_forward(float* out, const float* in, int64_t n) {
  swish_forward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::swish_backward(float* din, const float* dout, const float* in, int64_t n) {
  swish_backward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, dout, in, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::dropout_apply(float* x, float p, const DropoutKey& key, int N, int64_t per_example) {
  if (p <= 0.0f) return;
  const float keep_scale = 1.0f / (1.0f - p);  // the CPU's float expression
  const u32x2 k = philox_key(key.seed);
  const int64_t blocks = N * ((per_example + 3) / 4);
  dropout_kernel<<<grid_for(blocks), kThreads, 0, stream_>>>(x, p, keep_scale, k, key.layer, key.step,
                                                             key.example_base, N, per_example);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::add_channel_bias(float* x, const float* bias, int N, int HW, int C) {
  const int64_t HWC = static_cast<int64_t>(HW) * C, n = N * HWC;
  add_channel_bias_kernel<<<grid_for(n), kThreads, 0, stream_>>>(x, bias, HWC, C, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::sum_over_hw(float* dbias, const float* dx, int N, int HW, int C) {
  const double2* total = cuda::channel_sums(*this, N, HW, C, cuda::PlainValue{dx, HW, C});
  const int64_t n = static_cast<int64_t>(N) * C;
  store_totals_kernel<<<grid_for(n), kThreads, 0, stream_>>>(dbias, total, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::upsample2x_forward(float* out, const float* in, int N, int H, int W, int C) {
  const int64_t n = static_cast<int64_t>(N) * 4 * H * W * C;
  upsample_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, H, W, C, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::upsample2x_backward(float* din, const float* dout, int N, int H, int W, int C) {
  const int64_t n = static_cast<int64_t>(N) * H * W * C;
  sum_2x2_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, dout, H, W, C, 1.0f, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::avgpool2x_forward(float* out, const float* in, int N, int H, int W, int C) {
  const int64_t n = static_cast<int64_t>(N) * (H / 2) * (W / 2) * C;
  sum_2x2_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, H / 2, W / 2, C, 0.25f, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::avgpool2x_backward(float* din, bool accumulate, const float* dout, int N, int H, int W, int C) {
  const int64_t n = static_cast<int64_t>(N) * H * W * C;
  avgpool_backward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, accumulate, dout, H, W, C, n);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
