// One training iteration on a rank (Trainer's hot path): its slice of the global batch,
// t and ε from the counter-based RNG, forward, the loss, backward with the bucketed
// all-reduce overlapped, then one small all-reduce in which the ranks agree on the
// loss, on whether anything was NaN/Inf and on the stop flag; all ranks then apply the
// same update (or all skip it). Everything a step needs is planned at construction: a
// step allocates no memory of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/buffer.h"
#include "data/loader.h"
#include "train/run_context.h"
#include "io/checkpoint.h"

namespace ddpm {

class GradientAllReduce;
class Optimizer;
class StepHook;

// Per-step values every rank contributes to one all-reduce: the loss, the loss by t
// quartile, whether this rank saw a NaN/Inf loss or gradient, and how many ranks got a
// stop signal. Summed, they are the same on every rank, so every rank takes the same
// decision: skip the step, stop, or go on.
enum StepStat {
  kLossSum,
  kQuartileSum,
  kQuartileCount = kQuartileSum + 4,
  kNonFinite = kQuartileCount + 4,
  kStopUsr1,
  kStopTerm,
  kNumStats
};

struct StepResult {
  double stats[kNumStats] = {0};  // summed over the ranks
  double grad_norm = 0;
  bool applied = false;           // false: a NaN/Inf somewhere, every rank skipped the update
  double comm_wait_s = 0;         // all-reduce time not hidden behind backward
};

class TrainStep {
 public:
  // The references must outlive the step; hook may be null (no faults injected).
  TrainStep(const RunContext& run, Optimizer& optimizer, data::Loader& loader, StepHook* hook);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // Runs iteration state.iteration; moves state's step, iteration and data cursor on.
  StepResult run(TrainState& state);

 private:
  const RunContext run_;
  Optimizer& optimizer_;
  data::Loader& loader_;
  StepHook* hook_;
  int64_t iteration_ = 0;  // of the step in progress (what the gradient-ready callback reports)
  std::unique_ptr<GradientAllReduce> reducer_;
  const int64_t per_example_;
  // The step's activations (backend) and per-example values (host), sized once.
  Buffer x0_, x_t_, noise_, out_, dout_, t_dev_;
  std::vector<int> t_;
  std::vector<float> t_float_;
  std::vector<double> losses_;
  data::Batch batch_;  // refilled by the loader each step: its buffers circulate, none is allocated
};

}  // namespace ddpm
