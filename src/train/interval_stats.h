// The trainer's bookkeeping between log lines: step results summed over an interval of
// train.log_every steps, and the StepReport (train_log.h) made from them, for the live
// progress line after every step and for the metrics record at an interval's end.
#pragma once

#include <cstdint>

#include "train/train_log.h"
#include "train/train_step.h"

namespace ddpm {

class IntervalStats {
 public:
  // batch: the global batch; start_step: where this process began (rates count from it).
  IntervalStats(int batch, int64_t start_step, int64_t total_steps);

  // One step's result (applied or skipped).
  void add(const StepResult& r);
  // Steps skipped in a row up to the last one added (0 after an applied step).
  int64_t consecutive_skips() const { return consecutive_skips_; }
  bool empty() const { return steps_ == 0 && skipped_ == 0; }

  // The live report at `step`: the interval's mean loss, the run's rate and ETA.
  StepReport live(int64_t step, int64_t iteration, double lr) const;
  // The interval's record: live() plus the loss by t quartile, the interval's own rate,
  // its skipped steps and the mean all-reduce wait. Then starts the next interval.
  StepReport close(int64_t step, int64_t iteration, double lr);

 private:
  void reset();

  int batch_;
  int64_t start_step_, total_steps_;
  double run_start_, interval_start_;
  double sums_[kNumStats] = {0};
  int64_t steps_ = 0, skipped_ = 0, consecutive_skips_ = 0;
  double last_norm_ = 0, comm_wait_ = 0;
};

}  // namespace ddpm
