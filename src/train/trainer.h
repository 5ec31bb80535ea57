// The training loop of ddpm_train, one per rank: the rank's slice of each global batch
// from the loader, t and ε from the counter-based RNG (keyed by seed, iteration and
// global example index), L_simple (or the bound) on the rank's backend, the bucketed
// gradient all-reduce overlapped with backward, clipping + Adam on every rank, the EMA
// and the checkpoints on rank 0. Runs resume from the run directory's latest valid
// checkpoint, on any number of ranks that divides the global batch.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"

namespace ddpm {

class World;

struct TrainOptions {
  std::string run_dir;
  std::string config_source;  // for messages (the --config path)
  bool progress_bar = true;   // a live progress line when stderr is a terminal
};

// Status codes of a finished run (docs/operations.md).
constexpr int kExitRequeue = 75;  // stopped by SIGUSR1/SIGTERM after a checkpoint: requeue me

class Trainer {
 public:
  Trainer(World& world, const Config& config, const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to train.total_steps; returns kExitOk, or kExitRequeue when stopped by a
  // signal. Bad input is an InputError (the same on every rank, or an abort).
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm
