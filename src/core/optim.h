// The optimizer of the paper (Ho et al. 2020, appendix B): Adam with a linear learning
// rate warm-up, global-norm gradient clipping and an exponential moving average of the
// weights. The host side lives here (step counter, warm-up, clip factor, bias
// corrections); the per-element work is one fused Ops::adam_ema_update over the flat
// parameter buffer, whose layout the gradients, m, v and the EMA share (params.h), so a
// checkpoint stores m, v and the EMA by parameter name.
//
// Conventions (the reference is diffusion_tf/utils.py and tpu_utils/tpu_utils.py):
//  - warm-up: the reference's get_warmed_up_lr is lr * min(global_step / warmup, 1),
//    evaluated with global_step = the number of updates already applied (TF increments
//    it in apply_gradients, after the update). So update k = 1, 2, ... runs at
//    lr * min((k - 1) / warmup, 1): the first update has learning rate 0 (it only fills
//    Adam's moments) and update warmup + 1 is the first at the full rate. warmup 0:
//    the full rate from the start.
//  - clipping: TF clip_by_global_norm, scale = clip / max(norm, clip); clip 0 is off.
//  - Adam: PyTorch's torch.optim.Adam formula (eps added to sqrt(v) / sqrt(1 - β2^k),
//    step lr / (1 - β1^k)); TF's AdamOptimizer places eps differently (eps-hat).
//  - EMA: the shadow starts as the initial weights and after every update becomes
//    ema + (1 - decay) (param - ema). (The reference uses decay 1e-10 on its first
//    update, which gives the same shadow, since that update has learning rate 0.)
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "core/config.h"
#include "core/ops.h"

namespace ddpm {

class Optimizer {
 public:
  explicit Optimizer(const TrainConfig& config);

  // The learning rate of the update that follows `completed` updates (see above).
  double learning_rate(int64_t completed) const;

  // One update of params [n] from grads [n] (backend memory, the flat layout), with m,
  // v and ema (nullable) updated in place. grad_multiplier scales the incoming
  // gradients first (e.g. 1 / world size after a summing all-reduce); the norm is that
  // of the scaled gradient. Returns the global gradient norm before clipping. When it
  // is not finite nothing is changed and the step count stays: the caller decides
  // whether to skip the batch or stop (train.max_nonfinite_skips).
  // step() is gradient_norm() then, when the norm is finite, apply().
  double step(Ops& ops, float* params, const float* grads, float* m, float* v, float* ema, int64_t n,
              double grad_multiplier = 1.0);

  // The two halves of step(), for a caller that must agree on the norm (all ranks skip
  // a non-finite step together) between computing it and applying the update.
  double gradient_norm(Ops& ops, const float* grads, int64_t n, double grad_multiplier = 1.0) const;
  void apply(Ops& ops, float* params, const float* grads, float* m, float* v, float* ema, int64_t n,
             double grad_norm, double grad_multiplier = 1.0);
  // apply() on the training buffers (ema nullable), whose versions it then moves on.
  void apply(Ops& ops, ParamBuffer& params, const Buffer& grads, Buffer& m, Buffer& v, ParamBuffer* ema,
             double grad_norm);

  // The fused kernel's arguments for the next update given the gradient norm (exposed
  // for the GPU path and the tests).
  AdamStep next_step(double grad_norm, double grad_multiplier = 1.0) const;

  // Updates applied so far (the checkpoint's `step`); set on resume.
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t completed) { step_count_ = completed; }

 private:
  double lr_;
  int64_t warmup_steps_;
  double grad_clip_;
  double beta1_, beta2_, eps_;
  double ema_decay_;
  int64_t step_count_ = 0;
};

}  // namespace ddpm
