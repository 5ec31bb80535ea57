// The points at which a training step lets something outside it touch its values. The
// step calls the hook without knowing what it does; the tests' fault injection
// (fault_injection.h) is the one hook there is, and production runs have none.
#pragma once

#include <cstdint>

namespace ddpm {

class Ops;
class Buffer;
class ParamBuffer;

class StepHook {
 public:
  virtual ~StepHook() = default;
  // This rank's per-example losses [n] (host), before they are summed over the ranks.
  virtual void on_losses(int64_t iteration, double* losses, int n) = 0;
  // The zeroed gradient buffer, before backward accumulates into it and the all-reduce.
  virtual void on_zeroed_gradients(int64_t iteration, Ops& ops, Buffer& grads) = 0;
  // Backward has made the gradients [from, total) ready and handed them to the all-reduce.
  virtual void on_gradients_ready(int64_t iteration, int64_t from, int64_t total) = 0;
  // The parameters after the step's update (applied or skipped).
  virtual void on_parameters(int64_t iteration, Ops& ops, ParamBuffer& params) = 0;
};

}  // namespace ddpm
