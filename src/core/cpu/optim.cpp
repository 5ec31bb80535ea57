// The optimizer's per-element work on the CPU: the deterministic squared norm for
// global-norm clipping and the fused Adam + EMA update (see AdamStep in core/ops.h).
#include <algorithm>
#include <cmath>

#include "core/cpu/cpu_ops.h"

namespace ddpm {

double CpuOps::sum_squares(const float* x, int64_t n) {
  // Chunks of a fixed size, not one per thread: the partial sums, and the order they
  // are added in, do not depend on the thread count, so every run gets the same norm.
  constexpr int64_t kChunk = int64_t{1} << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  double* partial = scratch_as<double>(kSlotSumSquares, chunks);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const float* p = x + c * kChunk;
    const int64_t len = std::min(kChunk, n - c * kChunk);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < len; ++i) s += static_cast<double>(p[i]) * p[i];
    partial[c] = s;
  }
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

namespace {
// Float arithmetic in the rounding order of torch.optim.Adam's single-tensor step on the
// CPU (PyTorch 1.13, AVX2 kernels, whose GCC build fuses a + s * b * c into one FMA):
//   m.mul_(β1).add_(g, alpha=1-β1)          -> fma(g, 1-β1, m β1)
//   v.mul_(β2).addcmul_(g, g, value=1-β2)   -> fma((1-β2) g, g, v β2)
//   denom = v.sqrt() / bc2_sqrt + eps
//   p.addcdiv_(m, denom, value=-step_size)  -> p + (-step_size m) / denom
//   ema.add_(p - ema, alpha=1-decay)        -> fma(p - ema, 1-decay, ema)
// The explicit fma calls make this independent of the compiler's own contraction, so
// the golden test against PyTorch agrees bit for bit on most elements.
template <bool kWithEma>
void adam_ema_loop(float* param, float* m, float* v, float* ema, const float* grad, int64_t n, const AdamStep& s) {
  const float grad_scale = static_cast<float>(s.grad_scale);
  const float beta1 = static_cast<float>(s.beta1), one_minus_beta1 = static_cast<float>(1.0 - s.beta1);
  const float beta2 = static_cast<float>(s.beta2), one_minus_beta2 = static_cast<float>(1.0 - s.beta2);
  const float neg_step_size = static_cast<float>(-(s.lr / s.bias_correction1));
  const float bias_correction2_sqrt = static_cast<float>(s.bias_correction2_sqrt);
  const float eps = static_cast<float>(s.eps);
  const float ema_rate = static_cast<float>(1.0 - s.ema_decay);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * grad_scale;
    const float mi = std::fma(g, one_minus_beta1, m[i] * beta1);
    const float vi = std::fma(one_minus_beta2 * g, g, v[i] * beta2);
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    const float p = param[i] + (neg_step_size * mi) / denom;
    param[i] = p;
    if constexpr (kWithEma) ema[i] = std::fma(p - ema[i], ema_rate, ema[i]);  // TF's ema -= (1-d)(ema - p)
  }
}
}  // namespace

void CpuOps::adam_ema_update(float* param, float* m, float* v, float* ema, const float* grad, int64_t n,
                             const AdamStep& s) {
  if (ema) {
    adam_ema_loop<true>(param, m, v, ema, grad, n, s);
  } else {
    adam_ema_loop<false>(param, m, v, nullptr, grad, n, s);
  }
}

}  // namespace ddpm
