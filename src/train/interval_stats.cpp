#include "train/interval_stats.h"

#include <algorithm>
#include <cmath>

#include "core/clock.h"

namespace ddpm {

IntervalStats::IntervalStats(int batch, int64_t start_step, int64_t total_steps)
    : batch_(batch), start_step_(start_step), total_steps_(total_steps), run_start_(now_seconds()),
      interval_start_(run_start_) {}

void IntervalStats::add(const StepResult& r) {
  comm_wait_ += r.comm_wait_s;
  if (!r.applied) {
    ++skipped_;
    ++consecutive_skips_;
    return;
  }
  consecutive_skips_ = 0;
  last_norm_ = r.grad_norm;
  for (int k = 0; k < kNonFinite; ++k) sums_[k] += r.stats[k];
  ++steps_;
}

StepReport IntervalStats::live(int64_t step, int64_t iteration, double lr) const {
  const double steps_per_s = (step - start_step_) / std::max(now_seconds() - run_start_, 1e-9);
  StepReport rep;
  rep.step = step, rep.total_steps = total_steps_, rep.iteration = iteration;
  rep.loss = steps_ ? sums_[kLossSum] / (static_cast<double>(steps_) * batch_) : NAN;
  rep.lr = lr;
  rep.grad_norm = last_norm_;
  rep.eta_s = (total_steps_ - step) / std::max(steps_per_s, 1e-9);
  rep.images_per_s = steps_per_s * batch_;
  return rep;
}

StepReport IntervalStats::close(int64_t step, int64_t iteration, double lr) {
  StepReport rep = live(step, iteration, lr);
  for (int q = 0; q < 4; ++q) {
    const double n = sums_[kQuartileCount + q];
    rep.loss_quartile[q] = n > 0 ? sums_[kQuartileSum + q] / n : NAN;
  }
  const int64_t steps = steps_ + skipped_;
  rep.images_per_s = steps * batch_ / std::max(now_seconds() - interval_start_, 1e-9);
  rep.skipped = skipped_;
  rep.comm_wait_s = comm_wait_ / std::max<int64_t>(steps, 1);
  reset();
  return rep;
}

void IntervalStats::reset() {
  std::fill(std::begin(sums_), std::end(sums_), 0.0);
  steps_ = skipped_ = 0;
  comm_wait_ = 0;
  interval_start_ = now_seconds();
}

}  // namespace ddpm
