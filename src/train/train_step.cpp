#include "train/train_step.h"

#include <algorithm>
#include <cmath>
#include <csignal>

#include "core/config.h"
#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/unet.h"
#include "data/loader.h"
#include "dist/allreduce.h"
#include "dist/signals.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "train/model_buffers.h"
#include "train/step_hook.h"

namespace ddpm {
namespace {

// t ~ U{0, ..., T-1} for global example `index` of iteration `iteration`.
int draw_timestep(uint64_t seed, uint32_t iteration, uint32_t index, int T) {
  const u32x4 r = philox4x32_10(philox_counter(Purpose::kTimestep, 0, iteration, index, 0), philox_key(seed));
  return static_cast<int>((static_cast<uint64_t>(r[0]) * static_cast<uint64_t>(T)) >> 32);
}

}  // namespace

TrainStep::TrainStep(const RunContext& run, Optimizer& optimizer, data::Loader& loader, StepHook* hook)
    : run_(run),
      optimizer_(optimizer),
      loader_(loader),
      hook_(hook),
      per_example_(run.config.model.values_per_image()),
      t_(run.local_batch),
      t_float_(run.local_batch),
      losses_(run.local_batch) {
  const int64_t act = run.local_batch * per_example_;
  for (Buffer* b : {&x0_, &x_t_, &noise_, &out_, &dout_}) *b = Buffer(run.ops, act);
  t_dev_ = Buffer(run.ops, run.local_batch);
  const int64_t bucket = std::max<int64_t>(1024, static_cast<int64_t>(run.config.train.bucket_mb * (1 << 20) / 4));
  reducer_ = make_gradient_allreduce(run.world, run.ops, bucket);
}

TrainStep::~TrainStep() = default;

StepResult TrainStep::run(TrainState& state) {
  Ops& ops = run_.ops;
  ModelBuffers& buffers = run_.buffers;
  const int N = run_.local_batch;
  const TrainConfig& tc = run_.config.train;
  const int T = run_.diffusion.num_timesteps(), B = tc.batch_size;
  const int64_t iteration = state.iteration;
  const auto iteration32 = static_cast<uint32_t>(iteration);
  const int64_t P = buffers.params.size();
  auto enter = [&](const WatchPhase& p) { run_.watchdog.enter(p, iteration); };

  enter(phase::kData);
  loader_.next(batch_);
  const data::Batch& batch = batch_;
  const auto first = static_cast<uint32_t>(batch.first_global_example);

  enter(phase::kForward);
  DiffusionOps& kernels = ops.diffusion();
  const DiffusionTable& table = run_.diffusion.table();
  kernels.images_to_model(x0_.get(), batch.pixels.data(), N * per_example_);
  for (int i = 0; i < N; ++i) {
    t_[i] = draw_timestep(tc.seed, iteration32, first + i, T);
    t_float_[i] = static_cast<float>(t_[i]);
  }
  ops.upload(t_dev_.get(), t_float_.data(), N);
  kernels.fill_normal(noise_.get(), N, per_example_, tc.seed, Purpose::kNoise, 0, iteration32, first);
  kernels.q_sample(table, x_t_.get(), x0_.get(), noise_.get(), t_.data(), N, per_example_);
  Pass ps;
  ps.ops = &ops, ps.params = buffers.params.get(), ps.grads = buffers.grads.get(), ps.N = N;
  ps.training = true;
  ps.version = buffers.params.version();
  ps.dropout = DropoutKey{tc.seed, 0, iteration32, first};
  run_.net.forward(ps, out_.get(), x_t_.get(), t_dev_.get());
  // grad_weight 1/B: summing the ranks' gradients gives that of the global mean loss, so
  // the averaging is this scale, not a pass of its own.
  kernels.training_losses(table, losses_.data(), dout_.get(), out_.get(), x0_.get(), x_t_.get(), noise_.get(),
                          t_.data(), N, per_example_, 1.0 / B);
  if (hook_) hook_->on_losses(iteration, losses_.data(), N);

  enter(phase::kBackward);
  ops.zero(buffers.grads.get(), P);
  if (hook_) hook_->on_zeroed_gradients(iteration, ops, buffers.grads);
  reducer_->begin(buffers.grads.get(), P);
  iteration_ = iteration;
  // Captures `this` alone, so that std::function keeps it without a heap allocation.
  run_.net.backward(ps, dout_.get(), [this](int64_t from) {
    reducer_->ready(from);
    if (hook_) hook_->on_gradients_ready(iteration_, from, run_.net.layout().size());
  });
  enter(phase::kAllReduce);
  reducer_->finish();

  enter(phase::kAgreement);
  StepResult r;
  // The norm is agreed on (through kNonFinite) before the update is applied.
  r.grad_norm = optimizer_.gradient_norm(ops, buffers.grads.get(), P);
  double* stats = r.stats;
  for (int i = 0; i < N; ++i) {
    const int q = std::min(3, t_[i] * 4 / T);
    stats[kLossSum] += losses_[i];
    stats[kQuartileSum + q] += losses_[i];
    stats[kQuartileCount + q] += 1;
  }
  stats[kNonFinite] = std::isfinite(stats[kLossSum]) && std::isfinite(r.grad_norm) ? 0 : 1;
  stats[kStopUsr1] = stop_signal() == SIGUSR1 ? 1 : 0;
  stats[kStopTerm] = stop_signal() == SIGTERM ? 1 : 0;
  run_.world.sum(stats, kNumStats);

  enter(phase::kOptimizer);
  r.applied = stats[kNonFinite] == 0;
  if (r.applied) {
    optimizer_.apply(ops, buffers.params, buffers.grads, buffers.m, buffers.v, buffers.ema_or_null(),
                     r.grad_norm);
    state.step = optimizer_.step_count();
  }
  if (hook_) hook_->on_parameters(iteration, ops, buffers.params);
  ++state.iteration;
  state.data_epoch = batch.next.epoch;
  state.data_position = batch.next.position;
  r.comm_wait_s = reducer_->last_wait_seconds();
  return r;
}

}  // namespace ddpm
