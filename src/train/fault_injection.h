// Fault injection for the tests (docs/operations.md, "Test-only fault injection"). The
// environment variable DDPM_FAULT_INJECT, read once at start, names faults that the
// training loop then injects on one rank at chosen iterations:
//
//   DDPM_FAULT_INJECT=KIND:rank=R:iteration=I[,KIND:...]
//
//   KIND        nan_grad       this rank's gradient gets a NaN before the all-reduce
//               nan_loss       one of this rank's per-example losses becomes NaN
//               perturb_param  this rank's first parameter is nudged after the update,
//                              so the replicas diverge (the consistency check must see it)
//               die_in_allreduce  this rank kills itself (SIGKILL) halfway through
//                              backward, with part of its gradient all-reduce in flight
//                              and the other ranks waiting in it
//               slow_checkpoint  the checkpoint of this iteration (rank 0 writes them)
//                              waits 3 s with its temporary file written, before the
//                              commit: a window for signals during the write
//   iteration   I (one), I-J (inclusive) or I- (from I on); iterations count the global
//               batches drawn, from 0, skipped ones included (the checkpoint's `iteration`)
//
// Production never sets the variable; when it is set, rank 0 says so in the log. A
// malformed value is bad input (exit 2) so a typo cannot silently test nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "train/step_hook.h"

namespace ddpm {

enum class FaultKind { kNanGrad, kNanLoss, kPerturbParam, kDieInAllreduce, kSlowCheckpoint };

struct Fault {
  FaultKind kind = FaultKind::kNanGrad;
  int rank = 0;
  int64_t first_iteration = 0;
  int64_t last_iteration = 0;  // inclusive; INT64_MAX for "from first on"
};

class FaultInjector {
 public:
  static constexpr const char* kVariable = "DDPM_FAULT_INJECT";

  FaultInjector() = default;
  // The faults of `spec` (the variable's syntax); InputError naming `source` if malformed.
  static FaultInjector parse(const std::string& spec, const std::string& source = kVariable);
  // The faults of $DDPM_FAULT_INJECT (none when it is unset or empty).
  static FaultInjector from_environment();

  bool empty() const { return faults_.empty(); }
  const std::vector<Fault>& faults() const { return faults_; }
  std::string spec() const { return spec_; }
  // Whether a fault of `kind` hits `rank` at `iteration`.
  bool fires(FaultKind kind, int rank, int64_t iteration) const;

 private:
  std::vector<Fault> faults_;
  std::string spec_;
};

// The training step's hook that injects `faults` on `rank`; null when there are none.
std::unique_ptr<StepHook> make_fault_hook(const FaultInjector& faults, int rank);

// What the checkpoint writer calls between writing a checkpoint's temporary file and
// committing it (slow_checkpoint faults on `rank`); empty when there are none.
std::function<void(int64_t iteration)> make_checkpoint_delay(const FaultInjector& faults, int rank);

}  // namespace ddpm
