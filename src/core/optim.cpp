#include "core/optim.h"

#include <algorithm>
#include <cmath>

#include "core/common.h"

namespace ddpm {

Optimizer::Optimizer(const TrainConfig& config)
    : lr_(config.lr),
      warmup_steps_(config.warmup_steps),
      grad_clip_(config.grad_clip),
      beta1_(config.adam_beta1),
      beta2_(config.adam_beta2),
      eps_(config.adam_eps),
      ema_decay_(config.ema_decay) {}

double Optimizer::learning_rate(int64_t completed) const {
  if (warmup_steps_ <= 0) return lr_;
  return lr_ * std::min(static_cast<double>(completed) / static_cast<double>(warmup_steps_), 1.0);
}

AdamStep Optimizer::next_step(double grad_norm, double grad_multiplier) const {
  const double k = static_cast<double>(step_count_ + 1);  // PyTorch's `step` after its increment
  AdamStep s;
  s.lr = learning_rate(step_count_);
  s.beta1 = beta1_;
  s.beta2 = beta2_;
  s.eps = eps_;
  s.bias_correction1 = 1.0 - std::pow(beta1_, k);
  s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2_, k));
  const double clip_factor = grad_clip_ > 0.0 ? grad_clip_ / std::max(grad_norm, grad_clip_) : 1.0;
  s.grad_scale = grad_multiplier * clip_factor;
  s.ema_decay = ema_decay_;
  return s;
}

double Optimizer::gradient_norm(Ops& ops, const float* grads, int64_t n, double grad_multiplier) const {
  return std::fabs(grad_multiplier) * std::sqrt(ops.sum_squares(grads, n));
}

void Optimizer::apply(Ops& ops, float* params, const float* grads, float* m, float* v, float* ema, int64_t n,
                      double grad_norm, double grad_multiplier) {
  ops.adam_ema_update(params, m, v, ema, grads, n, next_step(grad_norm, grad_multiplier));
  ++step_count_;
}

void Optimizer::apply(Ops& ops, ParamBuffer& params, const Buffer& grads, Buffer& m, Buffer& v, ParamBuffer* ema,
                      double grad_norm) {
  const int64_t n = params.size();
  DDPM_CHECK(grads.size() == n && m.size() == n && v.size() == n && (!ema || ema->size() == n));
  apply(ops, params.get(), grads.get(), m.get(), v.get(), ema ? ema->get() : nullptr, n, grad_norm);
  params.changed();
  if (ema) ema->changed();
}

double Optimizer::step(Ops& ops, float* params, const float* grads, float* m, float* v, float* ema, int64_t n,
                       double grad_multiplier) {
  DDPM_CHECK(n >= 0 && params && grads && m && v);
  const double norm = gradient_norm(ops, grads, n, grad_multiplier);
  if (!std::isfinite(norm)) return norm;
  apply(ops, params, grads, m, v, ema, n, norm, grad_multiplier);
  return norm;
}

}  // namespace ddpm
